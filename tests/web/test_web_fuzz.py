"""Schema-driven fuzzing of every REST route with schemathesis, against a real server on loopback.

Schemathesis generates requests from the app's own OpenAPI schema (valid and invalid: wrong
types, missing fields, random bytes as "images", unknown models, odd methods) and checks each
response: never a 5xx, every status code and content type documented, every JSON body valid
against its schema, ``Allow`` on 405. The examples are bounded (``EMOAR_FUZZ_EXAMPLES``, 50 per
route by default) so the step stays short; ``--runslow`` runs eight times as many.

One check is left out on purpose: ``positive_data_acceptance`` expects a 2xx for any body the
schema allows, but a schema cannot describe "a decodable JPEG with a face-sized image in it",
so random bytes in the ``file`` part rightly get 400/415 (documented in the schema).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="the dev extra is not installed")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import positive_data_acceptance  # noqa: E402
from web_helpers import LiveServer  # noqa: E402

EXAMPLES = int(os.environ.get("EMOAR_FUZZ_EXAMPLES", "50"))


@pytest.fixture(scope="module")
def fuzz_server(make_app, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    server = LiveServer(
        make_app(rate_limit_per_minute=60000, rate_limit_burst=5000, max_upload_bytes=200_000)
    ).start()
    yield server
    server.stop()


def _schema():
    from emoar.web.app import create_app
    from emoar.web.settings import Settings

    # The schema the server publishes at /openapi.json (building the app loads no model).
    return schemathesis.openapi.from_dict(create_app(Settings()).openapi())


SCHEMA = _schema()
OPERATIONS = [r.ok() for r in SCHEMA.get_all_operations()]


def test_schema_lists_the_public_routes() -> None:
    labels = {op.label for op in OPERATIONS}
    assert {"GET /healthz", "GET /v1/models", "POST /v1/analyze", "POST /v1/analyze/video"} <= labels


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_every_route_survives_fuzzing(
    operation, fuzz_server: LiveServer, request: pytest.FixtureRequest
) -> None:
    examples = EXAMPLES * 8 if request.config.getoption("--runslow") else EXAMPLES

    @given(case=operation.as_strategy())
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case) -> None:
        case.call_and_validate(base_url=fuzz_server.url, excluded_checks=[positive_data_acceptance])

    run()
