"""Server-side latency of POST /api/predict with and without "explain", for a model file (the default model's
by default), on the real app in this process (no network in the way): the app's own timer, read back from
/api/health's predict_ms, which measures from the request reaching the handler to the answer being built.

usage: python benchmarks/bench_explain.py [MODEL.npz] [--n 200]
"""

from __future__ import annotations

import argparse
import base64
import io
import shutil
import tempfile
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from threadpoolctl import threadpool_info

from server.app import create_app
from server.settings import Settings


def seven() -> str:
    img = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(img).line([(70, 60), (210, 60), (120, 230)], fill=(0, 0, 0, 255), width=22)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", help="an .npz model; default: the data dir's default model")
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    source = Path(args.model) if args.model else Settings().default_model_path
    blas = [(i["internal_api"], i.get("architecture"), i["num_threads"]) for i in threadpool_info()]
    print(f"model {source}; BLAS {blas}")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "models").mkdir()
        shutil.copy(source, Path(tmp) / "models" / "default.npz")
        settings = Settings(data_dir=Path(tmp), train_default_model=False, allowed_hosts="testserver")
        with TestClient(create_app(settings)) as client:
            image = seven()
            for explain in (False, True):
                client.app.state.ctx.predict_times.clear()  # type: ignore[attr-defined]
                for _ in range(args.n):
                    r = client.post("/api/predict", json={"image": image, "explain": explain})
                    assert r.status_code == 200, r.text
                ms = client.get("/api/health").json()["predict_ms"]
                print(f"explain={explain!s:5}  n={ms['n']}  p50 {ms['p50']:.2f} ms  p99 {ms['p99']:.2f} ms")


if __name__ == "__main__":
    main()
