"""`neurons serve`'s memory options reach the settings the server is built with."""

from __future__ import annotations

import pytest

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


def test_a_negative_budget_is_refused_before_serving(monkeypatch, capsys):
    monkeypatch.setattr(cli, "serve", lambda app, settings: pytest.fail("served"))
    assert cli.main(["serve", "--decoded-cache-mb", "-1"]) == 2
    said = capsys.readouterr().err
    assert "decoded_cache_mb" in said and "greater than or equal to 0" in said
