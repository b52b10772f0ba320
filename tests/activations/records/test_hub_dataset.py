"""The published OLMo dataset as it is on the Hub, read through a local Hub (tests/hub.py) that
speaks the Hub's protocol to huggingface_hub: replicas written by `datasets` in the card's schema,
with the library's row groups and with 1,000-row ones."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from activations.io import parquet_parts
from activations.io.errors import RecordNotFoundError, UpstreamError
from activations.records.glu_parquet import GluParquetReader
from tests.compare import same
from tests.replica import expected_row

NEURONS = 1100
LAYOUTS = ["large", "small"]


def repo(name: str, revision: str | None = None) -> GluParquetReader:
    return GluParquetReader(f"hf://datasets/sjgerstner/replica-{name}", revision=revision)


def file_reads(hub, since: int = 0) -> list[tuple]:
    """The requests for file bytes (not the API's listings) since a point of the log."""
    return [entry for entry in hub.log[since:] if "/resolve/" in entry[1]]


def chunk_bytes(folder, layer: int, neuron: int, columns: list[str]) -> int:
    """The compressed size of these columns' chunks (and the key columns', which every read
    checks) in the row group holding a neuron's row, from the replica's own files."""
    row = layer * NEURONS + neuron
    columns = ["layer", "neuron", *columns]
    for path in sorted((folder / "data").glob("*.parquet")):
        metadata = pq.ParquetFile(path).metadata
        for g in range(metadata.num_row_groups):
            group = metadata.row_group(g)
            if row < group.num_rows:
                chunks = [group.column(j) for j in range(group.num_columns)]
                named = [c for c in chunks if c.path_in_schema.split(".")[0] in columns]
                return sum(c.total_compressed_size for c in named)
            row -= group.num_rows
    raise AssertionError("no such row")


def post_columns(dataset: GluParquetReader) -> list[str]:
    """What a hook_post answer reads: every summary, and hook_post's top examples."""
    return [c for c in dataset.columns if c.endswith(("_freq", "_mean")) or "_hook_post_max" in c]


def pre_columns(dataset: GluParquetReader) -> list[str]:
    return [c for c in dataset.columns if c.endswith(("_freq", "_mean")) or "_hook_pre_max" in c]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_records_equal_the_replica_rows(olmo_hub, olmo_replicas, layout):
    _, columns = olmo_replicas[layout]
    dataset = repo(layout)
    description = dataset.describe()
    assert description["layers"] == [0, 1, 2, 3] and description["n_neurons"] == NEURONS
    assert description["top_k"] == 16
    # first and last rows of shards and row groups, and the route users type first
    for layer, neuron in [(0, 0), (1, 366), (1, 367), (2, 733), (3, 1024), (3, NEURONS - 1)]:
        want = expected_row(columns, layer, neuron, NEURONS)
        got = dataset.read_record(layer, neuron)
        assert got.keys() == want.keys()
        assert all(same(got[c], want[c], rel=0, abs_=0) for c in want), (layer, neuron)
    dataset.close()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_footers_on_open_then_one_request_per_cold_neuron(
    olmo_hub, olmo_replicas, layout, monkeypatch
):
    # row groups fetched by the column chunks an answer needs, as the full-size files' are
    monkeypatch.setattr(parquet_parts, "WHOLE_GROUP_BYTES", 0)
    dataset = repo(layout)
    dataset.open()
    footers = file_reads(olmo_hub)
    assert len(footers) == 3 and all(r[3] == "bytes=-65536" for r in footers)  # one per shard
    for layer, neuron in [(0, 5), (1, 500), (3, 1024)]:  # one per shard
        before, sent = len(olmo_hub.log), olmo_hub.bytes_sent
        dataset.read_record(layer, neuron, post_columns(dataset))
        reads = file_reads(olmo_hub, before)
        assert len(reads) == 1 and len(olmo_hub.log) == before + 1, reads
        assert reads[0][3].count(",") >= 1  # the column chunks together: a multi-range request
        # the answer's column chunks (less what the footer read held already), and no more
        # than the multipart framing
        needed = chunk_bytes(olmo_replicas[layout][0], layer, neuron, post_columns(dataset))
        assert needed - 65536 <= olmo_hub.bytes_sent - sent < needed + 4096
    # a neighbour in the same row group: nothing asked
    before = len(olmo_hub.log)
    dataset.read_record(3, 1023, post_columns(dataset))
    assert len(olmo_hub.log) == before
    # another derived scalar of that neuron: only its own top-example chunks, in one request
    sent = olmo_hub.bytes_sent
    dataset.read_record(3, 1024, pre_columns(dataset))
    assert len(file_reads(olmo_hub, before)) == 1
    own = [c for c in pre_columns(dataset) if "_max_" in c]
    needed = chunk_bytes(olmo_replicas[layout][0], 3, 1024, own)
    assert needed - 65536 <= olmo_hub.bytes_sent - sent < needed + 4096
    dataset.close()


def test_fetched_bytes_are_kept_on_disk_for_the_next_open(olmo_hub):
    first = repo("large")
    first.read_record(3, 1024, post_columns(first))
    first.close()
    before = len(olmo_hub.log)
    again = repo("large")  # as after a restart: same NEURONS_HOME
    again.read_record(3, 1024, post_columns(again))
    # the listing is asked again (the files may have changed); footers and chunks are local
    assert file_reads(olmo_hub, before) == []
    again.close()


def test_a_whole_small_row_group_answers_its_other_derived_scalars(olmo_hub):
    dataset = repo("small")  # 1,000-row groups of a few MB: fetched whole
    dataset.read_record(1, 10, post_columns(dataset))
    before = len(olmo_hub.log)
    for columns in (pre_columns(dataset), None):
        dataset.read_record(1, 10, columns)
        dataset.read_record(1, 11, columns)
    assert len(olmo_hub.log) == before
    dataset.close()


def test_a_pinned_revision_is_read_and_an_unknown_one_named(olmo_hub):
    pinned = repo("large", revision="v1")
    pinned.read_record(0, 1)
    reads = file_reads(olmo_hub)
    assert reads and all("/resolve/v1/" in r[1] for r in reads)
    pinned.close()
    with pytest.raises(UpstreamError, match=r"Hugging Face Hub .*404 \(revision not found\)"):
        repo("large", revision="no-such-tag").describe()


def test_a_missing_repo_is_named(olmo_hub):
    with pytest.raises(UpstreamError, match=r"Hugging Face Hub .*404 \(repository not found"):
        GluParquetReader("hf://datasets/sjgerstner/no-such-dataset").describe()


def test_out_of_range_says_the_valid_ranges(olmo_hub):
    dataset = repo("small")
    with pytest.raises(RecordNotFoundError, match="1099"):
        dataset.read_record(0, NEURONS)
    dataset.close()


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (401, "401 (unauthorized"),
        (403, "403 (forbidden"),
        (404, "404 ("),
        (429, "429 (too many requests"),
    ],
)
def test_hub_answers_on_file_reads_are_named(olmo_hub, status, said):
    dataset = repo("large")
    dataset.open()
    olmo_hub.log.clear()  # the footers' reads of open()
    olmo_hub.fault = lambda method, path: status if "/resolve/" in path else None
    with pytest.raises(UpstreamError) as raised:
        dataset.read_record(2, 2)
    # answered at the first refusal, not after the hub client's half a minute of retries
    refused = [entry for entry in olmo_hub.log if "/resolve/" in entry[1]]
    assert [entry[2] for entry in refused] == [status]
    assert "Hugging Face Hub" in str(raised.value) and said in str(raised.value)
    dataset.close()


@pytest.mark.parametrize(("status", "said"), [(401, "401"), (403, "403"), (429, "429")])
def test_hub_answers_on_open_are_named(olmo_hub, status, said):
    olmo_hub.fault = lambda method, path: status
    with pytest.raises(UpstreamError, match=f"Hugging Face Hub .* answered {said}"):
        repo("large").describe()


def test_a_repo_with_its_files_at_the_root(olmo_hub, olmo_replicas, tmp_path):
    import shutil

    folder, columns = olmo_replicas["small"]
    for path in (folder / "data").glob("*.parquet"):
        shutil.copy(path, tmp_path / path.name)
    olmo_hub.add_repo("dataset", "someone/at-root", str(tmp_path))
    dataset = GluParquetReader("hf://datasets/someone/at-root")
    assert same(dataset.read_record(2, 7), expected_row(columns, 2, 7, NEURONS), rel=0, abs_=0)
    dataset.close()


def test_one_shard_by_its_path_and_a_missing_one_named(olmo_hub, olmo_replicas, tmp_path):
    """hf://…/data/<file>.parquet reads that file alone (its rows, as the replica has them); a
    file the repo does not hold is the Hub's 404, and nothing is fetched or kept for it."""
    folder, columns = olmo_replicas["small"]
    first = sorted((folder / "data").glob("*.parquet"))[0].name
    shard = GluParquetReader(f"hf://datasets/sjgerstner/replica-small/data/{first}")
    assert same(shard.read_record(0, 5), expected_row(columns, 0, 5, NEURONS), rel=0, abs_=0)
    shard.close()  # its fetched bytes on disk
    remote = tmp_path / "neurons-home" / "remote"
    kept = sorted(remote.rglob("*"))
    assert kept
    before = len(olmo_hub.log)
    missing = GluParquetReader("hf://datasets/sjgerstner/replica-small/data/no-such.parquet")
    with pytest.raises(UpstreamError, match=r"Hugging Face Hub .*404 \(no such file or folder\)"):
        missing.describe()
    missing.close()
    assert file_reads(olmo_hub, before) == []  # only the listing was asked
    assert sorted(remote.rglob("*")) == kept  # nothing written, nothing lost
