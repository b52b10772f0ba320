"""Runs the code blocks of a Markdown page as written, in order, in a folder of their own.

Each page's `sh` and `python` blocks become one bash script run in a fresh folder that holds what
the pages assume a reader has: `.venv` (this checkout's), `Makefile` and `setup.py`, a model
folder `my-model` (a tiny Llama) and a corpus `docs.jsonl`. A `python` block whose first line
is `# name.py` is written to that file (and run); any other is run as a script. Servers (`make
run`, `neurons serve`, `neurons run`) keep serving until the block ends: a line that starts one
runs in the background (as if it ended with `&`), and the next line waits for its port. Every
address of that port that a block names (in its comments too) is fetched while its servers run,
and `curl` fails on an HTTP error. The script runs in a network namespace of its own where the
system allows it, so that port 8000 is this page's alone.

A page that names `olmo-7b`, or a local Hub (`HF_ENDPOINT=http://127.0.0.1:PORT`), runs with a
local Hub stand-in (tests/docs_hub.py) started before its blocks and `HF_ENDPOINT` at it: the
published dataset on port 18080, or the page's own port, where pushes land and the token the
page exports (`export HF_TOKEN=...`) may write.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```", re.S | re.M)
RUN = ("sh", "python")
SHOWN = ("", "text")  # diagrams and output: shown, not run

# Lines that the tests cannot run from inside themselves, and why.
NOT_RUN = {
    "make test": "the test suite itself, of which this test is a part",
    "make bench": "the benchmarks (about 50 minutes, whole CPUs); bench/ is their code",
    ".venv/bin/python -m bench": "a benchmark figure (minutes, whole CPUs); bench/ is its code",
}
# A block that builds transformer-debugger's frontend (it names npm) runs only where
# NEURONS_DOCS_TDB names a checkout of it; elsewhere it is left out and the page's other blocks run.
TDB_BLOCK = "needs npm and a checkout of openai/transformer-debugger (NEURONS_DOCS_TDB)"
# Commands that serve until stopped, and the port each listens on.
SERVERS = {
    "make run": 8000,
    ".venv/bin/neurons serve": 8000,
    ".venv/bin/neurons run": 8000,
    "npm start": 1234,
}
HUB_PORT = 18080  # the stand-in of the published dataset, for pages that name olmo-7b
LOCAL_HUB = re.compile(r"\bHF_ENDPOINT=http://127\.0\.0\.1:(\d+)")
EXPORTED_TOKEN = re.compile(r"^export HF_TOKEN=([\w.-]+)$", re.M)
LOCAL_URL = re.compile(r"https?://(?:127\.0\.0\.1|localhost):(\d+)(?:[^\s`'\"),]*[^\s`'\"),.;:])?")

PRELUDE = r"""
set -eu -o pipefail
set -m  # each background job in a process group of its own, stopped whole
curl() { command curl --fail-with-body -sS --max-time 300 "$@"; echo; }
wait_port() {  # a server's port answers, or its job ended
    for _ in $(seq 1200); do
        if command curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$1/health" ||
           command curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$1/"; then return 0; fi
        if [ -z "$(jobs -rp)" ]; then echo "the server on port $1 stopped" >&2; return 1; fi
        sleep 0.5
    done
    echo "nothing answers on port $1" >&2; return 1
}
stop_jobs() {  # what Ctrl-C does, then a harder stop for what is left
    for pid in $(jobs -p); do kill -INT -- "-$pid" 2>/dev/null || true; done
    for _ in $(seq 60); do [ -z "$(jobs -rp)" ] && break; sleep 0.5; done
    for pid in $(jobs -p); do kill -KILL -- "-$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop_jobs EXIT
"""


@dataclass
class Page:
    """A page's blocks turned into one script, with what it ran and what it left out."""

    path: Path
    script: list[str] = field(default_factory=list)
    not_run: list[tuple[str, str]] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def runs_anything(self) -> bool:
        return any(not line.startswith(("#", ":")) for line in self.script)


def blocks(path: Path) -> list[tuple[str, str]]:
    """(language, body) of every fenced block; a language neither run nor shown is an error."""
    found = FENCE.findall(path.read_text())
    for language, _ in found:
        if language not in RUN + SHOWN:
            raise ValueError(f"{path.name}: a ```{language} block is neither run nor shown")
    return found


def logical_lines(body: str) -> list[str]:
    """Lines with their backslash continuations joined, as the shell reads them."""
    return body.replace("\\\n", " ").splitlines()


def server_port(command: str) -> int | None:
    """The port of a command that serves until stopped (after any VAR=value before it)."""
    words = re.sub(r"^(\w+=\S*\s+)*", "", command.rstrip("& "))
    if "--help" in words.split():
        return None
    for start, port in SERVERS.items():
        if words == start or words.startswith(start + " "):
            return port
    return None


def build(path: Path, make_is_current: bool) -> Page:
    """The page's script: its blocks in order, each ending with its servers stopped."""
    page = Page(path)
    for number, (language, body) in enumerate(blocks(path)):
        if language == "python":
            first = body.splitlines()[0] if body.strip() else ""
            named = re.fullmatch(r"#\s*([\w.-]+\.py)\s*", first)
            name = named.group(1) if named else f"block-{number}.py"
            page.files[name] = body
            page.script.append(f".venv/bin/python {shlex.quote(name)}")
        elif language == "sh" and "npm " in body and not os.environ.get("NEURONS_DOCS_TDB"):
            for line in logical_lines(body):
                command = line.partition(" #")[0].strip()
                if command and not command.startswith("#"):
                    page.not_run.append((command, TDB_BLOCK))
                    page.script.append(f": not run: {shlex.quote(command)}")
        elif language == "sh":
            page.script.extend(sh_block(page, body, make_is_current))
    return page


def sh_block(page: Page, body: str, make_is_current: bool) -> list[str]:
    lines: list[str] = []
    ports: set[int] = set()
    for line in logical_lines(body):
        command, _, comment = line.partition(" #")
        if line.lstrip().startswith("#"):
            command, comment = "", line
        command = command.strip()
        page.urls.extend(m.group(0) for m in LOCAL_URL.finditer(comment))
        if not command:
            continue
        skipped = next((why for start, why in NOT_RUN.items() if command.startswith(start)), None)
        if skipped:
            page.not_run.append((command, skipped))
            lines.append(f": not run: {shlex.quote(command)}")
            continue
        port = server_port(command)
        if port is not None:
            if command.startswith("make ") and not make_is_current:
                # the venv is older than setup.py or the Makefile: make would reinstall into it
                command = command.replace("make ", "make -o .venv/.installed ", 1)
            lines.append(command if command.endswith("&") else command + " &")
            lines.append(f"wait_port {port}")
            ports.add(port)
        else:
            lines.append(command)
    for url in dict.fromkeys(page.urls):
        if int(LOCAL_URL.match(url).group(1)) in ports:
            lines.append(f"curl -o /dev/null {shlex.quote(url)}")
    page.urls.clear()
    lines.append("stop_jobs")
    return lines


def sandbox(folder: Path, model: Path) -> None:
    """What the pages assume a reader has, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (".venv", "Makefile", "setup.py"):
        (folder / name).symlink_to(ROOT / name)
    shutil.copytree(model, folder / "my-model")


def local_hub(page: Page, env: dict[str, str], storage: Path, published: Path | None) -> str:
    """The prelude that starts the page's local Hub (repos pushed kept under `storage`,
    `published` served as the OLMo dataset), with `env` pointed at it; "" where none is named.
    Where the page names its address it pushes there: online, uploads through LFS (the
    stand-in speaks no Xet), and the token the page exports may write."""
    script = "\n".join(page.script)
    named = LOCAL_HUB.search(script)
    if named is None and published is None:
        return ""
    port = int(named.group(1)) if named else HUB_PORT
    args = [str(port), str(storage)] + (["--published", str(published)] if published else [])
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{port}"
    env.pop("HF_TOKEN", None)  # the page's own, if any
    if named:
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):  # a push is refused offline
            env.pop(name, None)
        env.update(HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
        for token in dict.fromkeys(EXPORTED_TOKEN.findall(script)):
            args += ["--write-token", token]
    return (
        f".venv/bin/python -m tests.docs_hub {shlex.join(args)} >hub.log 2>&1 &\n"
        "HUB=$!; disown; trap 'stop_jobs; kill $HUB 2>/dev/null || true' EXIT\n"
        f"for _ in $(seq 150); do command curl -so /dev/null 127.0.0.1:{port} && break; "
        "sleep 0.2; done\n"
    )


def isolated() -> list[str]:
    """A network namespace of its own (root, or a user namespace), else none."""
    probe = ["unshare", "-rn", "true"]
    try:
        if subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode == 0:
            return ["unshare", "-rn"]
    except (OSError, subprocess.SubprocessError):
        pass
    return []


def run(page: Page, folder: Path, env: dict[str, str], timeout: float, prelude: str = "") -> str:
    """Runs the page's script in `folder`; returns its output; raises with it on failure."""
    for name, text in page.files.items():
        (folder / name).write_text(text)
    script = PRELUDE + prelude + "\n".join(page.script) + "\n"
    (folder / "page.sh").write_text(script)
    wrap = isolated()
    command = ["bash", "page.sh"]
    if wrap:
        command = [*wrap, "bash", "-c", "ip link set lo up && exec bash page.sh"]
    child = subprocess.Popen(
        command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGTERM)  # its EXIT trap stops its servers
        try:
            output, _ = child.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            output, _ = child.communicate()
        raise AssertionError(f"{page.path.name} ran over {timeout} s:\n{output[-6000:]}") from None
    if child.returncode != 0:
        raise AssertionError(f"{page.path.name} failed ({child.returncode}):\n{output[-8000:]}")
    return output
