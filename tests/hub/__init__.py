"""A local stand-in for the Hugging Face Hub's HTTP API (what huggingface_hub and datasets use),
for tests and benchmarks: no internet needed.

Serves local folders as model / dataset repos, read-only, to `huggingface_hub` (HfFileSystem,
hf_hub_download, HfApi.repo_info/list_repo_tree/get_paths_info) and `datasets.load_dataset`,
when HF_ENDPOINT (read by huggingface_hub at *import* time) or `HfFileSystem(endpoint=...)`
points at it. Standard library only; runs in a background thread:

    hub = FakeHub()
    hub.add_repo("dataset", "owner/name", "/path/to/folder")   # revision "main" + its sha
    hub.add_repo("model", "owner/model", "/path/to/other", revisions=("main", "v1"))
    hub.start()            # 127.0.0.1, free port; hub.endpoint == "http://127.0.0.1:PORT"
    ...
    hub.stop()

Every request is appended to hub.log as (method, raw_path_and_query, status, range_header) as its
answer starts, and the body bytes sent are counted in hub.bytes_sent. `hub.latency_s` delays
every answer (a remote hub's round trip). A Range of several byte ranges is answered 206
multipart/byteranges, as HTTP servers that support it do.
`hub.fault` may be set to a callable(method, path) -> None | int | (int, dict) | float | "drop":
an int answers with that status (and no body), (int, dict) adds headers (X-Error-Code...), a float
sleeps that many seconds first, "drop" closes the connection without an answer.
"""

from tests.hub.repos import Repo
from tests.hub.server import FakeHub

__all__ = ["FakeHub", "Repo"]
