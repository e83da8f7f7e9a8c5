"""Every setting and limit in one place. Each is overridable by an environment variable NNPLAY_<NAME>,
e.g. NNPLAY_PORT=9000 or NNPLAY_MAX_CONCURRENT_RUNS=1."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.datasets.mnist import default_data_dir


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NNPLAY_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)  # MNIST cache, SQLite database, models
    seed_data_dir: Path | None = None  # read-only data to start from when data_dir is empty (the Docker image's)
    host: str = "127.0.0.1"
    port: int = 8000
    frontend_dir: Path = Path(__file__).resolve().parent.parent / "frontend"  # static page, with node_modules
    train_default_model: bool = True  # train the default model in the background if it is missing
    # limits: each one named in the error a request gets when it exceeds it
    max_concurrent_runs: int = 2  # runs training at once; more wait in a queue
    max_queued_runs: int = 8  # runs waiting; past this POST /api/runs answers 429
    max_layers: int = 8  # hidden layers
    max_units: int = 2048  # units per hidden layer
    max_parameters: int = 4_000_000  # weights + biases of one network
    max_filters: int = 64  # output channels of one conv layer
    max_macs: int = 20_000_000  # multiply-adds per sample through the whole network (conv layers add up fast)
    max_epochs: int = 200
    max_batch_size: int = 4096
    max_body_bytes: int = 2 * 1024 * 1024  # any JSON request body
    max_model_bytes: int = 40 * 1024 * 1024  # an uploaded .npz model
    max_image_bytes: int = 2 * 1024 * 1024  # a PNG drawing, decoded from base64
    max_canvas_side: int = 2048  # pixels, width or height of a drawing
    max_ws_message_bytes: int = 16 * 1024  # a message a client sends over the WebSocket
    ws_queue_size: int = 64  # epoch/state messages buffered per WebSocket client before it is dropped
    ws_queue_bytes: int = 2 * 1024 * 1024  # ... or this many bytes of them, whichever comes first
    ws_extras_interval: float = 1.0  # seconds: filters and misclassified digits go out at most this often
    ws_send_timeout: float = 10.0  # seconds a client may leave one message unaccepted before it is dropped

    @property
    def db_path(self) -> Path:
        return self.data_dir / "nnplay.sqlite3"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def default_model_path(self) -> Path:
        return self.models_dir / "default.npz"


@lru_cache
def get_settings() -> Settings:
    return Settings()
