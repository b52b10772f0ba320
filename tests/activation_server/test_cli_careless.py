"""Careless commands: each is refused in one line with exit status 2, before anything loads, and
nothing is replaced that is not the run's own output (a device, a FIFO, one of its inputs)."""

from __future__ import annotations

import os
import stat

import pytest

from activation_server.cli import main
from tests.tiny import random_documents, write_jsonl


@pytest.fixture
def corpus(tmp_path):
    return write_jsonl(tmp_path / "docs.jsonl", random_documents(3, seed=1))


def refused(capsys, *args: str) -> str:
    """Run `neurons ARGS`; it must exit 2 with one line on stderr, which is returned."""
    status = main(list(args))
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def collate(corpus, out, *extra: str) -> list[str]:
    return ["collate", "--model", "no-such-model", "--corpus", str(corpus), "--out", str(out),
            *extra]  # fmt: skip


def test_an_output_that_is_a_fifo_is_never_replaced(tmp_path, corpus, capsys):
    fifo = tmp_path / "out.parquet"
    os.mkfifo(fifo)
    err = refused(capsys, *collate(corpus, fifo, "--overwrite"))
    assert "not a regular file" in err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_an_output_that_is_an_input_is_refused(tmp_path, corpus, capsys):
    before = corpus.read_bytes()
    err = refused(capsys, *collate(corpus, corpus, "--overwrite"))
    assert "is the same file as the input" in err
    os.link(corpus, tmp_path / "other-name.parquet")  # the same file under another name
    refused(capsys, *collate(corpus, tmp_path / "other-name.parquet", "--overwrite"))
    assert corpus.read_bytes() == before
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    first.write_bytes(b"records a")
    second.write_bytes(b"records b")
    err = refused(capsys, "merge", str(first), str(second), "--out", str(first), "--overwrite")
    assert "is the same file as the input" in err and first.read_bytes() == b"records a"


def test_kernel_folders_and_overlong_names_are_refused(tmp_path, corpus, capsys):
    err = refused(capsys, *collate(corpus, "/sys/kernel/out.parquet", "--overwrite"))
    assert "under /sys" in err
    err = refused(capsys, *collate(corpus, "/dev/null", "--overwrite"))
    assert "under /dev" in err
    err = refused(capsys, *collate(corpus, tmp_path / ("n" * 300 + ".parquet")))
    assert "characters long" in err


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--top-k", "100000000"], "--top-k must be at most 10000"),
        (["--device", "nope"], "unknown device 'nope'"),
    ],
)
def test_careless_options_are_one_line(tmp_path, corpus, capsys, options, said):
    assert said in refused(capsys, *collate(corpus, tmp_path / "out.parquet", *options))


@pytest.mark.parametrize(
    ("layers", "said"),
    [("3-1", "the range 3-1 runs backwards; write it low-high (1-3)"), ("-2", "non-negative")],
)
def test_layers_say_what_is_wrong_with_them(tmp_path, corpus, capsys, layers, said):
    with pytest.raises(SystemExit) as exited:  # argparse's refusal: its usage, then the reason
        main(collate(corpus, tmp_path / "out.parquet", "--layers", layers))
    assert exited.value.code == 2
    assert said in capsys.readouterr().err.splitlines()[-1]


def test_cuda_on_a_machine_without_it_is_one_line(tmp_path, corpus, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    err = refused(capsys, *collate(corpus, tmp_path / "out.parquet", "--device", "cuda"))
    assert "this machine has no CUDA device; use --device cpu" in err


def test_a_text_column_where_there_are_no_columns_is_refused(tmp_path, capsys):
    text = tmp_path / "docs.txt"
    text.write_text("one document\n\nanother\n")
    err = refused(capsys, *collate(text, tmp_path / "o.parquet", "--text-column", "body"))
    assert "--text-column 'body' does not apply to corpus" in err
    err = refused(capsys, *collate("shakespeare", tmp_path / "o.parquet", "--text-column", "x"))
    assert "does not apply" in err


def test_paths_the_system_refuses_are_one_line(tmp_path, capsys):
    long = str(tmp_path / ("n" * 300))
    err = refused(capsys, *collate(long + ".jsonl", tmp_path / "o.parquet"))
    assert "File name too long" in err
    err = refused(capsys, "serve", "--dataset", long + ".parquet", "--port", "0")
    assert "File name too long" in err
