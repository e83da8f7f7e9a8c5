"""Schemathesis against the app's own OpenAPI schema, on the real server: no 5xx, responses match the schema,
negative data rejected. Runs started by the fuzzer are kept tiny by the server's own limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from server.app import create_app
from server.settings import Settings
from tests.conftest import LiveServer, make_data_dir, start_server, stop_server

LIMITS = {
    "NNPLAY_MAX_UNITS": "32",
    "NNPLAY_MAX_LAYERS": "2",
    "NNPLAY_MAX_EPOCHS": "1",
    "NNPLAY_MAX_CONCURRENT_RUNS": "1",
    "NNPLAY_MAX_QUEUED_RUNS": "2",
    "NNPLAY_MAX_PARAMETERS": "30000",
}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, mnist_source: Path) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("fuzz")
    server = start_server(make_data_dir(tmp, mnist_source), tmp / "server.log", LIMITS)
    yield server
    stop_server(server)
    assert "Traceback" not in server.log(), server.log()[-3000:]


# The schema is the app's own (generated without starting it); the calls go to the real server.
schema = schemathesis.openapi.from_dict(create_app(Settings(data_dir=Path("/nonexistent"))).openapi())


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_and_never_errors(case: schemathesis.Case, fuzz_server: LiveServer) -> None:
    # Schema-valid is not always acceptable: the configured limits (total parameters, epochs here capped at 1),
    # "exactly one of image/pixels" and "a PNG that is a digit" live outside JSON Schema, and rightly answer 422.
    case.call_and_validate(base_url=fuzz_server.url, excluded_checks=[positive_data_acceptance])
