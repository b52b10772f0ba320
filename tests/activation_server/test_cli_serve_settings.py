"""`neurons serve`'s memory options reach the settings the server is built with."""

from __future__ import annotations

import activation_server.app
from activation_server import cli


def test_the_cache_budgets_reach_the_server(monkeypatch):
    built = []
    monkeypatch.setattr(activation_server.app, "create_app", lambda settings: settings)
    monkeypatch.setattr(cli, "serve", lambda app, settings: built.append(settings))
    assert cli.main(["serve", "--cache-mb", "9", "--decoded-cache-mb", "7"]) == 0
    (settings,) = built
    assert settings.record_cache_mb == 9 and settings.decoded_cache_mb == 7
    assert settings.source_settings().decoded_bytes == 7 * 2**20
