"""The run store, the journal and the model files behave the same on both backends: the embedded SQLite file
and a real PostgreSQL server (tests/servers.py), each test on a fresh database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from engine.model import Model
from server.config import RunConfig
from server.database import STORAGE_ERRORS, Database
from server.db_postgres import PostgresDatabase
from server.journal import Journal
from server.migrations.postgres_runner import migrate, migration_files
from server.registry import ModelRegistry, UnknownModel
from server.settings import Settings
from server.store import Store

CONFIG = {"layers": [{"units": 8}], "epochs": 2}


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return Settings(data_dir=tmp_path, train_default_model=False)
    url = request.getfixturevalue("pg_database_url")
    return Settings(data_dir=tmp_path, database_url=url, train_default_model=False)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    store = Store.open(settings)
    yield store
    store.close()


def add_run(store: Store, run_id: str, owner: str | None = None, shared: bool = True) -> None:
    store.create_run(run_id, f"run {run_id}", "user", CONFIG, 6370, owner=owner, shared=shared)


def test_the_backend_is_the_one_the_settings_name(store: Store, settings: Settings) -> None:
    assert store.dialect == ("sqlite" if settings.database_url is None else "postgresql")
    assert settings.db_path.exists() == (store.dialect == "sqlite")


def test_runs_list_newest_first_with_a_cursor_and_the_owner_filter(store: Store) -> None:
    for i in range(5):
        add_run(store, f"r{i:010x}", owner="alice" if i % 2 else "bob", shared=i != 3)
    newest_first = [r["id"] for r in store.list_runs()]
    assert newest_first == [f"r{i:010x}" for i in reversed(range(5))]
    first_page = store.list_runs(limit=2)
    cursor = (first_page[-1]["created_at"], first_page[-1]["id"])
    assert [r["id"] for r in store.list_runs(limit=2, before=cursor)] == newest_first[2:4]
    # run 3 is alice's and not shared: bob does not see it, alice does
    assert "r0000000003" not in [r["id"] for r in store.list_runs(viewer="bob", everything=False)]
    assert "r0000000003" in [r["id"] for r in store.list_runs(viewer="alice", everything=False)]
    run = store.get_run("r0000000003")
    assert run is not None and run["config"] == CONFIG and run["shared"] is False and run["has_model"] is False
    assert store.get_run("r9999999999") is None


def test_an_epoch_and_the_run_summary_move_together(store: Store) -> None:
    add_run(store, "r0000000001")
    store.add_epoch("r0000000001", 1, '{"epoch": 1}', '{"x": 1}', test_accuracy=0.5)
    with pytest.raises(STORAGE_ERRORS):  # the summary update fails: the epoch row must go too
        store.add_epoch("r0000000001", 2, '{"epoch": 2}', None, no_such_column=1)
    assert store.history("r0000000001") == ['{"epoch": 1}']
    run = store.get_run("r0000000001")
    assert run is not None and run["epochs_done"] == 1 and run["test_accuracy"] == 0.5
    assert store.extras("r0000000001") == '{"x": 1}'
    store.add_epoch("r0000000001", 1, '{"epoch": "1 again"}', None)  # an epoch stored twice: replaced
    assert store.history("r0000000001") == ['{"epoch": "1 again"}']


def test_history_comes_in_epoch_order(store: Store) -> None:
    add_run(store, "r0000000001")
    for epoch in (3, 1, 2):
        store.add_epoch("r0000000001", epoch, f'{{"epoch": {epoch}}}', None)
    assert store.history("r0000000001") == ['{"epoch": 1}', '{"epoch": 2}', '{"epoch": 3}']


def test_owner_usage_counts_runs_queued_models_and_bytes(store: Store) -> None:
    add_run(store, "r0000000001", owner="alice")
    add_run(store, "r0000000002", owner="alice")
    add_run(store, "r0000000003", owner="bob")
    store.update_run("r0000000002", state="finished")
    store.add_epoch("r0000000001", 1, "x" * 100, None)
    store.add_stored_bytes("r0000000002", 1000)
    store.add_model("m0000000001", "upload", {"spec": 1}, 0.9, owner="alice", size=50)
    assert store.owner_usage("alice") == {"runs": 2, "queued": 1, "models": 1, "bytes": 1150}
    assert store.owner_usage("carol") == {"runs": 0, "queued": 0, "models": 0, "bytes": 0}


def test_mark_interrupted_and_delete(store: Store) -> None:
    add_run(store, "r0000000001")
    add_run(store, "r0000000002")
    add_run(store, "r0000000003")
    store.update_run("r0000000003", state="finished")
    assert store.mark_interrupted(["r0000000001"]) == 1
    assert store.mark_interrupted() == 1  # the other active one
    states = {r["id"]: r["state"] for r in store.list_runs()}
    assert states == {"r0000000001": "interrupted", "r0000000002": "interrupted", "r0000000003": "finished"}
    store.add_epoch("r0000000001", 1, "{}", None)
    assert store.delete_run("r0000000001") and not store.delete_run("r0000000001")
    assert store.history("r0000000001") == []  # cascaded


def test_journal_changes_are_numbered_in_order_and_progress_is_replaced(store: Store) -> None:
    add_run(store, "r0000000001")
    add_run(store, "r0000000002")
    journal = Journal(store)
    journal.add_change("r0000000001", '{"name": "lr", "new": 1}')
    journal.add_change("r0000000002", '{"name": "other run"}')
    journal.add_change("r0000000001", '{"name": "lr", "new": 2}')
    assert journal.changes("r0000000001") == [{"name": "lr", "new": 1}, {"name": "lr", "new": 2}]
    seqs = store.db.rows("SELECT seq FROM changes WHERE run_id=? ORDER BY seq", ("r0000000001",))
    assert [r["seq"] for r in seqs] == [1, 2]
    journal.add_progress("r0000000001", 20, '{"step": 20}', None)
    journal.add_progress("r0000000001", 10, '{"step": 10}', None)
    journal.add_progress("r0000000001", 10, '{"step": "10 again"}', None)
    journal.set_health("r0000000001", 20, '{"ok": true}')
    assert journal.progress("r0000000001") == [('{"step": "10 again"}', None), ('{"step": 20}', '{"ok": true}')]


def test_checkpoints_over_budget_drop_the_oldest_never_the_newest(store: Store) -> None:
    add_run(store, "r0000000001")
    journal = Journal(store)
    for epoch in (1, 2, 3):
        journal.add_checkpoint("r0000000001", epoch, bytes([epoch]) * 100, budget=250)
    assert journal.checkpoint_epochs("r0000000001") == [2, 3]
    assert journal.checkpoint("r0000000001", 3) == bytes([3]) * 100
    assert journal.checkpoint("r0000000001", 1) is None
    journal.add_checkpoint("r0000000001", 4, b"\0\1" * 200, budget=250)  # alone over budget: still kept
    assert journal.checkpoint_epochs("r0000000001") == [4]
    assert journal.checkpoint("r0000000001", 4) == b"\0\1" * 200


def test_model_files_round_trip_through_the_registry(store: Store, settings: Settings) -> None:
    registry = ModelRegistry(settings, store)
    model = Model.build(RunConfig.model_validate(CONFIG).model_spec(), seed=7)
    model.meta = {"test_accuracy": 0.25}
    assert not registry.default_ready()
    size = registry.save_run_model("r0000000001", model)
    assert size == len(model.to_bytes())
    on_disk = (settings.models_dir / "r0000000001.npz").is_file()
    assert on_disk == (store.dialect == "sqlite")  # a shared database keeps the bytes itself
    _, loaded = registry.get("r0000000001")
    assert loaded.state().keys() == model.state().keys()
    for name, array in model.state().items():
        assert np.array_equal(loaded.state()[name], array) and loaded.state()[name].dtype == array.dtype
    with registry.open_model("r0000000001") as handle:
        assert handle.read() == model.to_bytes()
    assert registry.get("r0000000001")[1] is loaded  # cached
    registry.install_default("r0000000001")
    assert registry.default_ready() and registry.get(None)[1].meta["test_accuracy"] == 0.25
    registry.delete_run_model("r0000000001")
    with pytest.raises(UnknownModel):
        registry.get("r0000000001")
    with pytest.raises(UnknownModel):
        registry.open_model("r0000000001")
    with pytest.raises(UnknownModel):
        registry.get("../etc/passwd")


def test_a_replaced_model_is_not_served_from_the_cache(store: Store, settings: Settings) -> None:
    registry = ModelRegistry(settings, store)
    spec = RunConfig.model_validate(CONFIG).model_spec()
    registry.save_run_model("r0000000001", Model.build(spec, seed=1))
    first = registry.get("r0000000001")[1]
    replacement = Model.build(spec, seed=2)
    registry.save_run_model("r0000000001", replacement)
    second = registry.get("r0000000001")[1]
    assert second is not first
    assert np.array_equal(second.state()["l0_W"], replacement.state()["l0_W"])


# ---- PostgreSQL only: migrations and reconnection -------------------------------------------------------


def test_migrations_apply_once(pg_database_url: str) -> None:
    versions = [version for version, _, _ in migration_files()]
    assert versions and versions[0] == 1
    with psycopg.connect(pg_database_url, autocommit=True) as conn:
        assert migrate(conn) == versions
        assert migrate(conn) == []
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert rows == [(v, n) for v, n, _ in migration_files()]
    PostgresDatabase(pg_database_url).close()  # opening a migrated database changes nothing either
    with psycopg.connect(pg_database_url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (len(versions),)


def test_several_openers_of_a_fresh_database_at_once_all_succeed(pg_database_url: str) -> None:
    errors: list[BaseException] = []
    opened: list[Database] = []
    start = threading.Barrier(6)

    def open_it() -> None:
        start.wait()
        try:
            db = PostgresDatabase(pg_database_url)
            db.execute("INSERT INTO models (id, name, created_at, spec) VALUES (?,?,?,?)", (str(id(db)), "x", 0, "{}"))
            opened.append(db)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert opened[0].scalar("SELECT count(*) FROM models") == 6
    assert opened[0].scalar("SELECT count(*) FROM schema_migrations") == len(migration_files())
    for db in opened:
        db.close()


def test_settings_take_an_empty_database_url_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNPLAY_DATABASE_URL", "")
    assert Settings().database_url is None
    monkeypatch.setenv("NNPLAY_DATABASE_URL", "postgresql://u:pw@db:5432/nnplay")
    url = Settings().database_url
    assert url is not None and url.get_secret_value().endswith("/nnplay") and "pw" not in repr(Settings())
    monkeypatch.setenv("NNPLAY_DATABASE_URL", "mysql://db/nnplay")
    with pytest.raises(ValueError, match="postgresql://"):
        Settings()
