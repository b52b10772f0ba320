"""Every command and code block of the README and of the guides in docs/, run as written
(tests/docs_runner.py says how), page by page: a page that does not run as written fails."""

from __future__ import annotations

import os
import re

import pytest

from tests.docs_runner import (
    NOT_RUN,
    PAGES,
    ROOT,
    TDB_BLOCK,
    blocks,
    build,
    local_hub,
    run,
    sandbox,
)
from tests.tiny import random_documents, write_jsonl


@pytest.fixture(scope="session")
def shared_models(tmp_path_factory):
    """One converted copy of the embedded model for every page (its first load takes 15 s)."""
    return tmp_path_factory.mktemp("docs-models")


def make_is_current() -> bool:
    done = os.system(f"make -q -C {ROOT} install >/dev/null 2>&1")  # noqa: S605 - fixed text
    return done == 0


def test_every_page_has_blocks_that_are_run_or_shown():
    """A block in another language would be neither run nor shown as output: refused."""
    names = [page.name for page in PAGES]
    assert "README.md" in names and len(names) > 5
    for page in PAGES:
        blocks(page)  # raises on a block neither run nor shown


def test_only_the_listed_commands_are_left_out():
    pairs = [pair for page in PAGES for pair in build(page, True).not_run]
    left_out = [c for c, why in pairs if why != TDB_BLOCK]
    assert left_out, "the README names make test"
    assert all(c.startswith(tuple(NOT_RUN)) for c in left_out)
    for start in NOT_RUN:  # a reason for a command no page names any more is stale
        assert any(c.startswith(start) for c in left_out), start


PAGE_TIMEOUT_S = 1500  # a page that explains with the embedded model runs for minutes


@pytest.mark.slow
@pytest.mark.timeout(PAGE_TIMEOUT_S + 120)  # the page's own limit below says what ran over
@pytest.mark.parametrize("path", PAGES, ids=[p.name for p in PAGES])
def test_the_page_runs_as_written(path, tmp_path, tiny_models, shared_models, request):
    page = build(path, make_is_current())
    if not page.runs_anything:
        pytest.skip(f"{path.name} has no command")
    folder = tmp_path / "reader"
    sandbox(folder, tiny_models["llama"])
    write_jsonl(folder / "docs.jsonl", random_documents(20, seed=8))
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(shared_models)
    env = {
        **os.environ, "PYTHONPATH": str(ROOT), "NEURONS_HOME": str(home),
        "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }  # fmt: skip
    env.pop("NEURONS_REGISTER", None)
    if tdb := os.environ.get("NEURONS_DOCS_TDB"):
        (folder / "neuron_viewer").symlink_to(os.path.join(tdb, "neuron_viewer"))
    published = None
    if any(re.search(r"\bolmo-7b\b", line) for line in page.script):
        published, _ = request.getfixturevalue("olmo_replicas")["large"]
    prelude = local_hub(page, env, tmp_path / "hub-storage", published)
    output = run(page, folder, env, timeout=PAGE_TIMEOUT_S, prelude=prelude)
    at = output.find("Traceback")
    assert at < 0, output[max(0, at - 1000) : at + 5000]  # the traceback, not the page's tail
    for name in page.files:
        assert (folder / name).exists()
