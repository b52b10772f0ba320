"""Property-based fuzzing of every route from the OpenAPI schema: no 5xx but the documented
501 of what is not served and 502/504 of a broken upstream, and every 4xx says what was
wrong."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from activation_server.app import create_app
from activation_server.settings import LOOPBACK_HOSTS, ServerSettings
from tests.activation_server.conftest import register_tiny

# schemathesis's test client names the host "testserver"
HOSTS = [*LOOPBACK_HOSTS, "testserver"]
APP = create_app(
    ServerSettings(max_tokens_per_request=64, allowed_hosts=HOSTS, debugger_model="tiny-llama")
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors_and_every_client_error_explains(case, tiny_dataset):
    register_tiny(tiny_dataset)  # a no-op after the first case
    response = case.call()
    # 501: what the server documents it does not serve; 502/504: a broken upstream
    assert response.status_code < 500 or response.status_code in (501, 502, 504), (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )
    if 400 <= response.status_code < 500:
        detail = response.json().get("detail")
        assert detail, f"{case.method} {case.formatted_path}: 4xx without detail"
    assert "Traceback" not in response.text
