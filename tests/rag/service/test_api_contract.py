"""The OpenAPI schema against the service: a bounded, seeded schemathesis run over every operation.

Schema-valid requests must not be refused, schema-violating ones must not be accepted, and every status code,
content type and body must be the documented one. The store is empty and the app's lifespan never runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection
from schemathesis.specs.openapi.schemas import OpenApiSchema

from rag import RAG
from rag.service import create_app
from rag.service.config import ServiceSettings

pytestmark = pytest.mark.unit

OPERATIONS = [
    "GET /v1/models",
    "POST /v1/chat/completions",
    "POST /v1/ask",
    "POST /v1/documents",
    "GET /v1/documents",
    "DELETE /v1/documents/{document_id}",
    "GET /healthz",
    "GET /readyz",
]
TAKES_INPUT = {label for label in OPERATIONS if label.startswith(("POST", "DELETE")) or label == "GET /v1/documents"}
BUDGET = settings(
    max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenApiSchema]:
    qa = RAG.open(tmp_path_factory.mktemp("contract") / "store")
    app = create_app(qa, ServiceSettings())
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    app.state.service.limiter.close()
    qa.close()


def operation(api_schema: OpenApiSchema, label: str) -> schemathesis.APIOperation:
    method, path = label.split(" ")
    return api_schema[path][method]


def test_every_operation_is_fuzzed(api_schema: OpenApiSchema) -> None:
    labels = {op.ok().label for op in api_schema.get_all_operations()}
    assert labels == set(OPERATIONS)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("label", OPERATIONS)
def test_the_operation_keeps_its_contract(api_schema: OpenApiSchema, label: str, mode: GenerationMode) -> None:
    if mode is GenerationMode.NEGATIVE and label not in TAKES_INPUT:
        pytest.skip("no parameters or body to get wrong")
    # Without the lifespan the models never load, so /readyz answers its documented 503.
    excluded = [not_a_server_error] if label == "GET /readyz" else []
    if label == "POST /v1/documents":
        # Multipart carries every value as text: a "null" file or a collection of 500 is a valid upload on the wire.
        excluded.append(negative_data_rejection)

    @BUDGET
    @given(case=operation(api_schema, label).as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(excluded_checks=excluded)

    check()
