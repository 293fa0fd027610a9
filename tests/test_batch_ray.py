"""``medtune batch --engine ray``: the same outputs as the local engine, resume, worker errors, on a 1-CPU Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import ner_docs
from medtune.batch.runner import run_batch
from medtune.errors import MedtuneError
from medtune.io.jsonl import write_jsonl

ray = pytest.importorskip("ray", reason="needs medtune[ray] (make test installs it)")

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
PIPELINE = GOLDEN / "pipeline-note.yaml"  # sentences, NER, rule and model assertions, classification
MODEL = GOLDEN / "ner-linear"
PLANTED = "ZZPATIENT-SMITH-4711"


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=1, include_dashboard=False, logging_level="error")
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch-ray")
    docs = ner_docs(9, repeat=2)
    for doc in docs:
        doc.spans = []
    write_jsonl(docs, folder / "notes.jsonl")  # medtune documents
    # Parquet rows of another order, so that the two sources differ
    pq.write_table(pa.table({"id": [d.id for d in docs][::-1], "text": [d.text for d in docs][::-1]}),
                   folder / "notes.parquet")
    return folder


def shard_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if not p.name.startswith((".", "_"))}


def test_ray_outputs_are_identical_to_the_local_engine(ray_session, inputs, tmp_path):
    # one folder with a JSONL and a Parquet file: both readers and writers in one Ray run
    local = run_batch(PIPELINE, inputs, tmp_path / "local", shard_size=4, progress=False)
    remote = run_batch(PIPELINE, inputs, tmp_path / "ray", shard_size=4, progress=False, engine="ray")
    assert (remote.engine, remote.shards, remote.documents_written) == ("ray", 6, 18) and local.documents_written == 18
    files = shard_files(tmp_path / "ray")
    assert sorted(files) == sorted(f"notes-0000{k}.{ext}" for ext in ("jsonl", "parquet") for k in range(3))
    assert files == shard_files(tmp_path / "local")  # byte for byte
    first = [json.loads(line) for line in files["notes-00000.jsonl"].decode().splitlines()]
    assert any(span["attributes"].get("assertion") for doc in first for span in doc["spans"])
    assert pq.read_table(tmp_path / "ray" / "notes-00000.parquet").column("spans").to_pylist()[0]
    assert json.loads((tmp_path / "ray" / "_medtune_batch.json").read_text())["finished"] is True

    for name in ("notes-00001.jsonl", "notes-00002.parquet"):  # as if the run had stopped before them
        (tmp_path / "ray" / name).unlink()
    again = run_batch(PIPELINE, inputs, tmp_path / "ray", shard_size=4, progress=False, engine="ray", resume=True)
    assert (again.shards_skipped, again.documents_written) == (4, 5)
    assert shard_files(tmp_path / "ray") == files


def test_a_failing_shard_on_a_worker_is_a_coded_error_without_note_text(ray_session, inputs, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes((inputs / "notes.jsonl").read_bytes() + b'{"id": "x", "text": "' + PLANTED.encode()
                    + b'", "labels": "one"}\n')
    with pytest.raises(MedtuneError) as err:
        run_batch(MODEL, bad, tmp_path / "out", shard_size=5, progress=False, engine="ray")
    assert "[E103]" in str(err.value) and "shard bad-00001" in str(err.value) and PLANTED not in str(err.value)
    assert not (tmp_path / "out" / "bad-00001.jsonl").exists()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]
