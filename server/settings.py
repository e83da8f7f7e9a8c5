"""Every setting and limit in one place. Each is overridable by an environment variable NNPLAY_<NAME>,
e.g. NNPLAY_PORT=9000 or NNPLAY_MAX_CONCURRENT_RUNS=1."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.datasets.mnist import default_data_dir


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NNPLAY_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)  # MNIST cache, SQLite database, models
    # Cluster mode: runs, journals and model files in PostgreSQL, e.g. postgresql://user@127.0.0.1:5432/nnplay
    # (empty or unset: the SQLite file and model files in data_dir). A secret: it may hold a password.
    database_url: SecretStr | None = None
    seed_data_dir: Path | None = None  # read-only data to start from when data_dir is empty (the Docker image's)
    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000  # 0: any free port (the one bound is printed)
    frontend_dir: Path = Path(__file__).resolve().parent.parent / "frontend"  # static page, with node_modules
    train_default_model: bool = True  # train the default model in the background if it is missing
    # limits: each one named in the error a request gets when it exceeds it
    max_concurrent_runs: Annotated[int, Field(ge=1)] = 2  # runs training at once; more wait in a queue
    max_queued_runs: Annotated[int, Field(ge=0)] = 8  # runs waiting; past this POST /api/runs answers 429
    max_layers: Annotated[int, Field(ge=1)] = 8  # hidden layers
    max_units: Annotated[int, Field(ge=1)] = 2048  # units per hidden layer
    max_parameters: Annotated[int, Field(ge=1)] = 4_000_000  # weights + biases of one network
    max_filters: Annotated[int, Field(ge=1)] = 64  # output channels of one conv layer
    checkpoint_budget: Annotated[int, Field(ge=0)] = 64 * 1024 * 1024  # bytes of per-epoch checkpoints kept per run
    max_macs: Annotated[int, Field(ge=1)] = 20_000_000  # multiply-adds per sample through the whole network
    max_epochs: Annotated[int, Field(ge=1)] = 200
    max_toy_epochs: Annotated[int, Field(ge=1)] = 100_000  # generated 2-D sets: an epoch takes milliseconds
    max_batch_size: Annotated[int, Field(ge=1)] = 4096
    max_body_bytes: Annotated[int, Field(ge=1024)] = 2 * 1024 * 1024  # any JSON request body
    max_model_bytes: Annotated[int, Field(ge=1024)] = 40 * 1024 * 1024  # an uploaded .npz model
    max_image_bytes: Annotated[int, Field(ge=1024)] = 2 * 1024 * 1024  # a PNG drawing, decoded from base64
    max_canvas_side: Annotated[int, Field(ge=28, le=16384)] = 2048  # pixels, width or height of a drawing
    max_concurrent_predictions: Annotated[int, Field(ge=1)] = (
        4  # /api/predict computing at once; past it 503 + Retry-After
    )
    max_ws_message_bytes: Annotated[int, Field(ge=256)] = 16 * 1024  # a message a client sends over the WebSocket
    ws_queue_size: Annotated[int, Field(ge=1)] = (
        64  # epoch/state messages buffered per WebSocket client before it is dropped
    )
    ws_queue_bytes: Annotated[int, Field(ge=64 * 1024)] = (
        2 * 1024 * 1024
    )  # ... or this many bytes of them, whichever first
    ws_extras_interval: Annotated[float, Field(ge=0.0, le=3600.0)] = (
        1.0  # seconds: filters and misclassified digits, at most
    )
    ws_send_timeout: Annotated[float, Field(gt=0.0, le=3600.0)] = (
        10.0  # seconds a client may leave a message unaccepted
    )
    # exposure (server/serving.py, server/security.py, server/auth.py)
    max_connections: Annotated[int, Field(ge=1)] = 1000  # open sockets; past it the oldest idle one is closed, or 503
    fd_reserve: Annotated[int, Field(ge=16)] = 100  # descriptors kept free for the database, model files and answers
    max_header_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 64 * 1024  # request line + headers (431 past it)
    header_timeout: Annotated[float, Field(gt=0.0, le=600.0)] = 10.0  # seconds for a request's headers to arrive (408)
    body_timeout: Annotated[float, Field(gt=0.0, le=3600.0)] = (
        60.0  # seconds for a request's body to arrive, once started
    )
    keep_alive_timeout: Annotated[int, Field(ge=1, le=600)] = 5  # seconds an idle keep-alive connection is kept
    allowed_hosts: str = ""  # more Host names to serve, comma-separated ("*": any); loopback + bind host always
    allowed_origins: str = ""  # more origins allowed to change state, e.g. https://app.example ("*": any)
    token: SecretStr | None = None  # required when set; generated when bound to a non-loopback address
    admin_token: SecretStr | None = None  # the teacher's: steers and deletes any run; the token lets in, no more
    # owners (server/owners.py): each browser or script is an anonymous owner; these bound what one may keep
    max_runs_per_owner: Annotated[int, Field(ge=1)] = 500  # runs stored (any state); past it 429 until some are deleted
    max_queued_runs_per_owner: Annotated[int, Field(ge=0)] = 4  # runs one owner may have waiting in the queue
    max_models_per_owner: Annotated[int, Field(ge=0)] = 20  # uploaded models one owner may keep
    max_bytes_per_owner: Annotated[int, Field(ge=1024)] = 512 * 1024 * 1024  # histories + model files of one owner
    # cluster mode (server/cluster/): runs train on Celery workers; unset = embedded, everything in this process
    broker_url: SecretStr | None = None  # e.g. redis://host:6379/0 (Celery's broker and the live event bus)
    queue_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = "nnplay"  # the Celery queue of runs
    worker_heartbeat: Annotated[float, Field(gt=0.0, le=60.0)] = 2.0  # seconds between a worker's "still here"
    worker_lost_after: Annotated[float, Field(gt=0.0, le=600.0)] = 10.0  # seconds without one: run requeued
    max_run_attempts: Annotated[int, Field(ge=1, le=20)] = 3  # workers lost by one run before it is interrupted
    # growth over time
    max_pause_seconds: Annotated[float, Field(gt=0.0, le=7 * 86400.0)] = 600.0  # a paused run then stops (slot freed)
    max_watchers_per_run: Annotated[int, Field(ge=1)] = 50  # WebSocket clients of one run; past it 503 / close 1013

    @field_validator("token", "admin_token", "broker_url", "database_url", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        return None if value == "" else value  # NNPLAY_TOKEN= (empty) means none set, not an empty one

    @model_validator(mode="after")
    def _cluster_settings_agree(self) -> Settings:
        if self.broker_url is not None and self.database_url is None:
            # workers on other machines cannot reach this process's SQLite file: runs would wait for ever
            raise ValueError("NNPLAY_BROKER_URL (cluster mode) needs NNPLAY_DATABASE_URL (postgresql://...) too")
        if (
            self.admin_token is not None
            and self.token is not None
            and (self.admin_token.get_secret_value() == self.token.get_secret_value())
        ):
            raise ValueError(
                "NNPLAY_ADMIN_TOKEN must differ from NNPLAY_TOKEN (everyone with the token would be admin)"
            )
        if self.worker_lost_after < 2 * self.worker_heartbeat:
            raise ValueError("worker_lost_after must be at least twice worker_heartbeat, or live workers look lost")
        return self

    @field_validator("token", "admin_token")
    @classmethod
    def _usable_token(cls, value: SecretStr | None) -> SecretStr | None:
        # it travels in a URL, a header and a cookie: only characters safe in all three, and not guessable
        if value is not None and not re.fullmatch(r"[A-Za-z0-9._~-]{16,512}", value.get_secret_value()):
            raise ValueError("the token must be 16 to 512 characters from A-Z a-z 0-9 . _ ~ -")
        return value

    @field_validator("database_url")
    @classmethod
    def _postgresql_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("the database URL must start with postgresql:// (e.g. postgresql://user@host:5432/db)")
        return value

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
