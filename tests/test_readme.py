"""The README's way from a model folder to its neurons, run as written: its collate command in a
folder holding `my-model` (a tiny Llama) and `docs.jsonl`, then its Python block."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny import random_documents, write_jsonl

README = Path(__file__).parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.S)


def first_hour_commands() -> list[list[str]]:
    """The three-command block: the one with `--model ./my-model`."""
    (block,) = [b for b in blocks("sh") if "--model ./my-model" in b]
    return [
        shlex.split(line.split("#")[0]) for line in block.splitlines() if line.strip()[:1] != "#"
    ]


@pytest.fixture
def folder(tmp_path, tiny_models, monkeypatch):
    shutil.copytree(tiny_models["llama"], tmp_path / "my-model")
    write_jsonl(tmp_path / "docs.jsonl", random_documents(20, seed=8))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_gets_from_a_model_folder_to_records_and_searches(folder):
    collate, serve = first_hour_commands()
    assert collate[:2] == [".venv/bin/neurons", "collate"] and serve[1:3] == ["serve", "--dataset"]
    command = [sys.executable, "-m", "activation_server.cli", *collate[1:], "--engine", "eager"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert (folder / "mine.parquet").exists() and (folder / "mine.parquet.tokens.arrow").exists()
    (python,) = [b for b in blocks("python") if "api.open_file" in b]
    scope: dict = {}
    exec(compile(python, "README.md", "exec"), scope)  # noqa: S102 - the README's own code
    record, found, peaks = scope["record"], scope["found"], scope["peaks"]
    examples = [e for q in record.quadrants for e in q.examples["hook_post"]]
    assert examples and all(e.tokens for e in examples)  # the text of every example
    assert len(found.neurons) == 20 and found.token_index == len(found.tokens) - 1
    # the module-level search names the same dataset's pages when told which
    api, mine = scope["api"], scope["mine"]
    named = api.search_prompt(
        mine.metadata.model, "To be, or not to be", token_index=-1,
        dataset=mine.metadata.short_name,
    )  # fmt: skip
    assert named.model_dump() == found.model_dump() and named.dataset == mine.metadata.short_name
    assert peaks.token == " king" and peaks.indexed > 0
