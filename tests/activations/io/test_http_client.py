"""The one HTTP client of byte I/O, as blocking readers use it: ranged reads from several threads
share its session, and a script that reads and ends without closing anything exits cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from activations.io import http_client
from activations.io.byte_cache import ByteCache
from activations.io.remote import RemoteFile, Transport
from activations.pools import side_by_side
from tests.servers import RangeServer

ROOT = Path(__file__).parents[3]
DATA = bytes(range(256)) * 4096  # 1 MiB


def test_ranges_read_from_many_threads_at_once_are_the_files_bytes(tmp_path):
    server = RangeServer({"/f.bin": DATA}, multi_range=False)
    try:
        remote = RemoteFile(server.url("/f.bin"), Transport(timeout_s=10), ByteCache(tmp_path))
        remote.open()
        ranges = [(i * 100_000 + 7, i * 100_000 + 50_007) for i in range(8)]
        outcomes = side_by_side([lambda r=r: bytes(remote.read(*r)) for r in ranges])
        assert [data for data, _ in outcomes] == [DATA[a:b] for a, b in ranges]
        assert remote.transport.stats["requests"] == 1 + len(ranges)  # the tail, then each
        assert http_client.blocking() is http_client.blocking()  # one client per process
    finally:
        server.close()


def test_a_script_that_reads_and_ends_at_once_exits_cleanly(tmp_path):
    server = RangeServer({"/f.bin": DATA})
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from activations.io.byte_cache import ByteCache
        from activations.io.remote import RemoteFile, Transport
        cache = ByteCache(Path({str(tmp_path)!r}))
        remote = RemoteFile({server.url("/f.bin")!r}, Transport(), cache)
        remote.open()
        print(len(bytes(remote.read(10, 200_010))))
        """
    )
    try:
        done = subprocess.run(
            [sys.executable, "-W", "default", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "200000"
    assert done.stderr == ""  # no unclosed session, no exception ignored at exit
