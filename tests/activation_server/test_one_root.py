"""The server and the Python API share one composition root (activations.session): the same
settings and defaults, and the same record, with its text, values and weight views, from HTTP
and from Python."""

from __future__ import annotations

from activation_server.services import Services
from activation_server.settings import ServerSettings
from activations import api
from activations.session import SessionSettings


def test_the_server_settings_are_the_sessions_and_its_own():
    shared = SessionSettings.model_fields
    server = ServerSettings()
    for name, field in shared.items():  # one set of defaults
        assert getattr(server, name) == field.default, name
    assert {"host", "port", "allowed_hosts"} <= set(ServerSettings.model_fields) - set(shared)


def test_a_record_is_the_same_from_http_and_from_python(client, tiny_dataset):
    url = "/neuron_record/tiny-llama/mlp_post_act/1/5?context=2&activations=true&weights=true"
    served = client.get(url).json()
    session = api.Session(max_tokens=40)
    try:
        record = session.open_dataset("tiny-llama").record(
            1, 5, context=2, activations=True, weights=True
        )
    finally:
        session.close()
    answered = record.model_dump(mode="json", by_alias=True)
    for one in (served, answered):  # the weight views, or why not yet (computed once per model)
        assert one["weights"] is not None or "weight views" in (one["weightsNote"] or "")
    # the server shows its own paths by their last part only; the rest is the same
    for key in ("dataset", "weightsNote", "weights"):
        served.pop(key), answered.pop(key)
    assert answered == served and answered["quadrants"][0]["examples"]
    services = client.app.state.services
    assert isinstance(services, Services) and services.sources is services.workbench.sources
