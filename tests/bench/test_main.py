"""`python -m bench` runs each figure in a child process: what a child wrote survives its exit."""

import json

from bench.__main__ import read_part, table

ROW = {"subject": "s", "baseline": "b", "ratio": 1.0, "target": None, "met": None}


def test_a_child_that_aborts_after_writing_keeps_its_rows_and_says_so(tmp_path):
    part = tmp_path / "part.json"
    part.write_text(json.dumps({"rows": [ROW], "details": {"x": 1}}))
    figure = read_part(part, -6)
    assert figure["rows"] == [ROW]
    assert figure["details"] == {"x": 1}
    assert figure["error"] == "exit status -6 after its figure was written"
    printed = table({"explain": figure})
    assert "FAILED: exit status -6 after its figure was written" in printed
    assert "| s " in printed


def test_a_figure_error_and_a_failed_exit_are_both_said(tmp_path):
    part = tmp_path / "part.json"
    part.write_text(json.dumps({"rows": [], "details": {}, "error": "ValueError: x"}))
    assert read_part(part, 1)["error"] == (
        "ValueError: x; exit status 1 after its figure was written"
    )


def test_a_clean_exit_adds_nothing_and_a_missing_part_is_an_error(tmp_path):
    part = tmp_path / "part.json"
    part.write_text(json.dumps({"rows": [ROW], "details": {}}))
    assert "error" not in read_part(part, 0)
    assert read_part(tmp_path / "absent.json", -9) == {
        "rows": [],
        "details": {},
        "error": "exit status -9",
    }
