"""When the PostgreSQL server goes away, requests answer 503 naming the database (never its password), and
once it is back the same process answers again: no restart, no stale connection served."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.database import DatabaseUnavailable
from server.db_postgres import PostgresDatabase
from server.settings import Settings
from tests.servers import PostgresServer


def test_runs_answer_503_while_the_database_is_down_and_200_when_it_is_back(
    postgres_server: PostgresServer, pg_database_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=pg_database_url, data_dir=tmp_path, train_default_model=False)
    database = pg_database_url.rsplit("/", 1)[1]
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/runs").status_code == 200
        postgres_server.stop()
        try:
            down = client.get("/api/runs")
            assert down.status_code == 503, down.text
            assert down.headers["retry-after"]
            named = f"the database postgresql://127.0.0.1:{postgres_server.port}/{database} is unreachable"
            assert down.json()["detail"].startswith(named) and down.json()["detail"].endswith("try again shortly")
            assert client.get("/api/runs").status_code == 503  # still down: still a clear answer, quickly
        finally:
            postgres_server.start()
        back = client.get("/api/runs")
        assert back.status_code == 200, back.text
        assert back.json() == []


def test_a_restart_while_idle_goes_unnoticed(postgres_server: PostgresServer, pg_database_url: str) -> None:
    db = PostgresDatabase(pg_database_url)
    try:
        assert db.scalar("SELECT 1") == 1  # a pooled connection, now idle
        postgres_server.stop()
        postgres_server.start()
        assert db.scalar("SELECT count(*) FROM runs") == 0  # the dead idle connection is replaced, not used
    finally:
        db.close()


def test_the_message_never_shows_the_password(postgres_server: PostgresServer, pg_database_url: str) -> None:
    with_password = pg_database_url.replace("postgres@", "postgres:s3cret-pw@")
    db = PostgresDatabase(with_password)  # trust authentication: the password is ignored, but it is there
    try:
        postgres_server.stop()
        with pytest.raises(DatabaseUnavailable) as caught:
            db.scalar("SELECT 1")
        assert "s3cret-pw" not in str(caught.value) and "postgres@" not in str(caught.value)
        assert str(caught.value).startswith(f"the database postgresql://127.0.0.1:{postgres_server.port}/")
    finally:
        postgres_server.start()
        db.close()


def test_a_server_started_while_the_database_is_down_migrates_once_it_is_up(
    postgres_server: PostgresServer, pg_database_url: str
) -> None:
    postgres_server.stop()
    try:
        db = PostgresDatabase(pg_database_url)  # starts anyway (web replicas may start before the database)
        with pytest.raises(DatabaseUnavailable):
            db.scalar("SELECT count(*) FROM runs")
    finally:
        postgres_server.start()
    try:
        assert db.scalar("SELECT count(*) FROM runs") == 0  # the schema was created on the first connection
    finally:
        db.close()
