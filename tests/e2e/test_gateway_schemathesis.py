"""Through the running gateway: schemathesis, driven by the merged API document, finds no 5xx and
no response the document does not describe (status, content type, body)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from bench.system import RunningSystem
from tests.e2e.test_gateway_isolation import community_with_key, merged_document

pytestmark = pytest.mark.e2e

# Enough to reach the documented answers of an operation, few enough to stay under 3 minutes.
EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Server-sent events: the answer never ends, so a bounded request cannot judge it (its own
# tests read it as a stream).
ENDLESS = {("GET", "/v1/communities/{community_id}/kpis/stream")}
PER_OPERATION = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    # No shrinking: a failure's report already carries the request that reproduces it.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)



def cases(operation: APIOperation, community: str) -> st.SearchStrategy[Case]:
    """Valid and invalid requests, the path's community fixed to one the key may see: otherwise
    they would all stop at the gateway's 404 and never reach a service."""
    fixed = {"community_id": community} if "{community_id}" in operation.path else None
    return st.one_of(
        operation.as_strategy(mode, path_parameters=fixed)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    )


def failures_of(operation: APIOperation, community: str, base_url: str, secret: str) -> str | None:
    @PER_OPERATION
    @given(case=cases(operation, community))
    def exercise(case: Case) -> None:
        # Negative cases may carry random headers, once a `Host` that Go's HTTP server (Traefik)
        # refuses as malformed before any middleware runs, in plain text no gateway config can
        # change. Host picks the server; it is no input of the API this test judges.
        for name in [n for n in case.headers or {} if n.lower() == "host"]:
            del case.headers[name]
        case.call_and_validate(
            base_url=base_url, headers={"Authorization": f"Bearer {secret}"}, checks=CHECKS,
            timeout=15,
        )

    try:
        exercise()
    # Every operation is tried and all findings reported together; schemathesis groups the
    # failures of one operation in a BaseExceptionGroup.
    except (Exception, BaseExceptionGroup) as error:
        return f"{operation.method.upper()} {operation.path}: {error}"
    return None


def test_every_operation_answers_as_documented_and_never_with_a_5xx(
    system: RunningSystem,
) -> None:
    with httpx.Client(base_url=system.gateway, headers=system.headers, timeout=15) as operator:
        community, _, secret = community_with_key(operator, "schemathesis")
        document: dict[str, Any] = merged_document(operator)
    schema = schemathesis.openapi.from_dict(document)
    operations = [
        operation
        for operation in (result.ok() for result in schema.get_all_operations())
        if (operation.method.upper(), operation.path) not in ENDLESS
    ]
    assert len(operations) > 10
    found = [
        failure
        for operation in operations
        if (failure := failures_of(operation, community, system.gateway, secret))
    ]
    assert not found, "\n\n".join(found)
