"""``medtune batch`` with the local engine: shards, outputs, resume after a SIGKILL, errors without note text."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from tqdm import tqdm
from typer.testing import CliRunner

import medtune
from helpers import ner_docs
from medtune.batch.command import batch_command
from medtune.batch.engine import run_local
from medtune.batch.ray_engine import RayShardWorker, connected
from medtune.batch.runner import run_batch
from medtune.batch.shards import plan_shards, read_shard
from medtune.batch.store import MANIFEST, read_output_shard
from medtune.document import Document
from medtune.errors import MedtuneError, MissingExtraError
from medtune.io.jsonl import read_jsonl, write_jsonl

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
MODEL = GOLDEN / "ner-linear"
REPO = Path(__file__).resolve().parent.parent
PLANTED = "ZZPATIENT-SMITH-4711"


def notes(n: int, prefix: str = "d") -> list[Document]:
    docs = ner_docs(n, repeat=2, prefix=prefix)
    for doc in docs:
        doc.spans = []
    return docs


@pytest.fixture(scope="module")
def predictor():
    return medtune.load(MODEL, mode="fp32")


def expected(predictor, docs: list[Document]) -> list[dict]:
    return [d.to_dict() for d in predictor.pipe([d.copy() for d in docs])]


def outputs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if not p.name.startswith((".", "_")))


def written(out: Path) -> list[dict]:
    return [d.to_dict() for p in outputs(out) for d in read_output_shard(p)]


def temporaries(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


def batch(input, out, **kwargs):
    kwargs.setdefault("mode", "fp32")
    kwargs.setdefault("progress", False)
    return run_batch(MODEL, input, out, **kwargs)


# ----------------------------------------------------------------------------------- shards
def test_jsonl_shards_read_from_their_offsets_give_what_read_jsonl_gives(tmp_path):
    docs = notes(11)
    lines = [d.to_json() for d in docs]
    ends = ["\n", "\r\n", "\r", "\n\n", "\n  \n"]  # LF, CRLF, a lone CR, blank lines between documents
    raw = "\ufeff" + "".join(line + ends[k % len(ends)] for k, line in enumerate(lines))
    path = tmp_path / "in.jsonl"
    path.write_bytes(raw.encode("utf-8"))
    plan = plan_shards(path, 4)
    assert [s.count for s in plan.shards] == [4, 4, 3] and plan.documents == 11
    assert [s.name for s in plan.shards] == ["in-00000", "in-00001", "in-00002"]
    got = [d.to_dict() for s in reversed(plan.shards) for d in reversed(list(read_shard(s)))][::-1]
    assert got == [d.to_dict() for d in read_jsonl(path)] == [d.to_dict() for d in docs]
    assert plan_shards(path, 4).digest() == plan.digest() != plan_shards(path, 5).digest()


def test_local_run_writes_one_jsonl_per_shard_equal_to_the_predictor(tmp_path, predictor):
    docs = notes(10)
    write_jsonl(docs, tmp_path / "notes.jsonl")
    result = batch(tmp_path / "notes.jsonl", tmp_path / "out", shard_size=4, batch_size=3)
    assert [p.name for p in outputs(tmp_path / "out")] == ["notes-00000.jsonl", "notes-00001.jsonl",
                                                           "notes-00002.jsonl"]
    assert [sum(1 for _ in read_jsonl(p)) for p in outputs(tmp_path / "out")] == [4, 4, 2]
    got = written(tmp_path / "out")
    assert got == expected(predictor, docs) and any(d["spans"] for d in got)
    assert (result.shards, result.shards_skipped, result.documents_written) == (3, 0, 10)
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["finished"] is True and manifest["documents"] == 10 and manifest["shard_size"] == 4


def test_parquet_in_parquet_out_with_shards_across_row_groups(tmp_path, predictor):
    docs = notes(8)
    table = pa.table({"note_id": list(range(100, 108)), "note": [d.text for d in docs], "other": ["x"] * 8})
    pq.write_table(table, tmp_path / "notes.parquet", row_group_size=3)
    batch(tmp_path / "notes.parquet", tmp_path / "out", shard_size=5, text_column="note", id_column="note_id")
    files = outputs(tmp_path / "out")
    assert [p.name for p in files] == ["notes-00000.parquet", "notes-00001.parquet"]
    want = expected(predictor, [Document(id=str(100 + k), text=d.text) for k, d in enumerate(docs)])
    assert written(tmp_path / "out") == want
    first = pq.read_table(files[0])
    assert first.column_names == ["id", "text", "labels", "spans", "annotations"] and first.num_rows == 5
    assert first.column("spans").to_pylist()[0] == [{"start": s["start"], "end": s["end"], "label": s["label"],
                                                     "score": s["score"]} for s in want[0]["spans"]]


def test_a_folder_of_jsonl_and_txt_files(tmp_path, predictor):
    folder = tmp_path / "in"
    folder.mkdir()
    docs = notes(3)
    write_jsonl(docs[:2], folder / "a.jsonl")
    (folder / "n1.txt").write_text(docs[2].text, encoding="utf-8")
    (folder / "n2.txt").write_text(docs[0].text, encoding="utf-8")
    (folder / "README.md").write_text("not a note")
    (folder / ".hidden.txt").write_text("skipped")
    plan = plan_shards(folder, 1)
    assert [s.name for s in plan.shards] == ["a-00000", "a-00001", "txt-00000", "txt-00001"]
    assert plan.skipped_files == 1
    batch(folder, tmp_path / "out", shard_size=10)
    assert [p.name for p in outputs(tmp_path / "out")] == ["a-00000.jsonl", "txt-00000.jsonl"]
    want = expected(predictor, docs[:2] + [Document(id="n1", text=docs[2].text), Document(id="n2", text=docs[0].text)])
    assert written(tmp_path / "out") == want


def test_flat_jsonl_records_with_named_columns(tmp_path, predictor):
    docs = notes(3)
    (tmp_path / "r.jsonl").write_text("".join(json.dumps({"nid": 7 + k, "body": d.text, "ward": "A"}) + "\n"
                                              for k, d in enumerate(docs)), encoding="utf-8")
    batch(tmp_path / "r.jsonl", tmp_path / "out", text_column="body", id_column="nid")
    assert written(tmp_path / "out") == expected(predictor, [Document(id=str(7 + k), text=d.text)
                                                             for k, d in enumerate(docs)])


def test_progress_bar_counts_documents(tmp_path):
    write_jsonl(notes(5), tmp_path / "n.jsonl")
    plan = plan_shards(tmp_path / "n.jsonl", 2)
    (tmp_path / "out").mkdir()
    sink = io.StringIO()
    with tqdm(total=plan.documents, file=sink, disable=False, unit="doc") as bar:
        assert run_local(plan.shards, tmp_path / "out", model=str(MODEL), batch_size=2, mode="fp32", bar=bar) == 5
        assert bar.n == 5
    assert "5/5" in sink.getvalue() and PLANTED not in sink.getvalue()


# ----------------------------------------------------------------------------------- resume
CHILD = """
import os, sys, time
from pathlib import Path
import medtune.batch.engine as engine
from medtune.batch.runner import run_batch

MARKER = Path(sys.argv[3])
load = engine.load_runner


class Stalling:
    # yields the documents; in the third shard, after two documents, says so and waits to be killed
    def __init__(self, runner):
        self.runner, self.calls = runner, 0

    def pipe(self, docs, batch_size=None):
        self.calls += 1
        for k, doc in enumerate(self.runner.pipe(docs, batch_size=batch_size)):
            if self.calls == 3 and k == 2:
                MARKER.write_text(str(os.getpid()))
                time.sleep(600)
            yield doc


engine.load_runner = lambda *a, **k: Stalling(load(*a, **k))
run_batch(sys.argv[4], sys.argv[1], sys.argv[2], shard_size=3, batch_size=1, mode="fp32", progress=False)
"""


def test_resume_after_sigkill_writes_every_document_exactly_once(tmp_path, predictor):
    docs = notes(13)
    docs[7].text = docs[7].text + " " + PLANTED  # note text that must not survive in a partial file
    write_jsonl(docs, tmp_path / "notes.jsonl")
    (tmp_path / "child.py").write_text(textwrap.dedent(CHILD))
    out, marker = tmp_path / "out", tmp_path / "marker"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    child = subprocess.Popen([sys.executable, str(tmp_path / "child.py"), str(tmp_path / "notes.jsonl"), str(out),
                              str(marker), str(MODEL)], cwd=REPO, env=env, stderr=subprocess.PIPE)
    try:
        deadline_polls = 0
        while not marker.exists():
            assert child.poll() is None, child.stderr.read().decode(errors="replace")[-2000:]
            deadline_polls += 1
            assert deadline_polls < 6000, "the child never reached the third shard"
            child_wait(child)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    assert [p.name for p in outputs(out)] == ["notes-00000.jsonl", "notes-00001.jsonl"]
    assert len(temporaries(out)) == 1  # the third shard, half-written by the killed process

    with pytest.raises(MedtuneError) as err:  # a second run without --resume would mix two runs
        batch(tmp_path / "notes.jsonl", out, shard_size=3, batch_size=1)
    assert "[E700]" in str(err.value) and "--resume" in str(err.value)
    with pytest.raises(MedtuneError, match=r"\[E700\].*shard_size"):
        batch(tmp_path / "notes.jsonl", out, shard_size=4, resume=True)

    result = batch(tmp_path / "notes.jsonl", out, shard_size=3, batch_size=1, resume=True)
    assert (result.shards, result.shards_skipped, result.documents_written) == (5, 2, 7)
    assert temporaries(out) == []
    got = written(out)
    assert [d["id"] for d in got] == [d.id for d in docs]  # each document once, in order
    assert got == expected(predictor, docs)
    assert sum(PLANTED in p.read_text() for p in out.iterdir() if p.is_file()) == 1  # only its finished shard


def child_wait(child: subprocess.Popen) -> None:
    try:
        child.wait(timeout=0.05)
    except subprocess.TimeoutExpired:
        pass


# ----------------------------------------------------------------------------------- errors
def test_errors_are_coded_and_quote_no_note_text(tmp_path):
    good = tmp_path / "good.jsonl"
    write_jsonl(notes(2), good)
    records = tmp_path / "records.jsonl"
    records.write_text(json.dumps({"nid": [PLANTED], "body": PLANTED}) + "\n" + '{"nid": 1, "body": NaN}\n')
    cases = [
        (dict(input=records, text_column="body", id_column="nid"), "E107", "records.jsonl:1:"),
        (dict(input=records, text_column="body", id_column="missing"), "E107", "--id-column"),
        (dict(input=good, engine="spark"), "E300", "local, ray"),
        (dict(input=good, ray_address="10.0.0.1:6379"), "E300", "--engine ray"),
        (dict(input=good, shard_size=0), "E300", "--shard-size"),
        (dict(input=tmp_path / "missing.jsonl"), "E100", "not found"),
        (dict(input=tmp_path / "notes.csv"), "E100", ".parquet"),
        (dict(input=tmp_path / "empty.jsonl"), "E100", "no documents"),
    ]
    (tmp_path / "notes.csv").write_text(f"id,text\n1,{PLANTED}\n")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    for k, (kwargs, code, hint) in enumerate(cases):
        with pytest.raises(MedtuneError) as err:
            batch(out=tmp_path / f"out{k}", **kwargs)
        assert f"[{code}]" in str(err.value) and hint in str(err.value), str(err.value)
        assert PLANTED not in str(err.value)
    nan = tmp_path / "nan.jsonl"
    nan.write_text('{"nid": 1, "body": NaN}\n')
    with pytest.raises(MedtuneError, match=r"\[E102\] .*nan.jsonl:1: a non-finite number"):
        batch(nan, tmp_path / "out-nan", text_column="body", id_column="nid")
    with pytest.raises(MedtuneError, match=r"\[E400\]"):
        run_batch(tmp_path, good, tmp_path / "out-model")
    with pytest.raises(MedtuneError, match=r"\[E300\].*--mode"):
        run_batch(GOLDEN / "pipeline-note.yaml", good, tmp_path / "out-mode", mode="fp32")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("x")
    with pytest.raises(MedtuneError, match=r"\[E700\].*not empty"):
        batch(good, tmp_path / "busy")


def test_parquet_column_errors(tmp_path):
    pq.write_table(pa.table({"id": [1, None], "text": [PLANTED, "fine"]}), tmp_path / "p.parquet")
    with pytest.raises(MedtuneError) as err:
        batch(tmp_path / "p.parquet", tmp_path / "out")
    assert "[E107]" in str(err.value) and "row 1" in str(err.value) and PLANTED not in str(err.value)
    with pytest.raises(MedtuneError, match=r"\[E107\].*--text-column"):
        batch(tmp_path / "p.parquet", tmp_path / "out2", text_column="body")
    assert not (tmp_path / "out" / "p-00000.parquet").exists() and temporaries(tmp_path / "out") == []


def test_ray_engine_without_the_extra_names_the_install_command(tmp_path, monkeypatch):
    write_jsonl(notes(1), tmp_path / "n.jsonl")
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingExtraError) as err:
        batch(tmp_path / "n.jsonl", tmp_path / "out", engine="ray")
    assert "[E500]" in str(err.value) and "pip install 'medtune[ray]'" in str(err.value)
    assert not (tmp_path / "out").exists()  # refused before any work


def test_a_worker_returns_its_errors_as_codes_without_note_text(tmp_path):
    bad = tmp_path / "bad.jsonl"
    write_jsonl(notes(2), bad)
    with open(bad, "a", encoding="utf-8") as handle:
        handle.write('{"id": "x", "text": "' + PLANTED + '", "spans": 3}\n')
    shards = plan_shards(bad, 2).shards
    (tmp_path / "out").mkdir()
    worker = RayShardWorker({"model": str(MODEL), "out_dir": str(tmp_path / "out"), "mode": "fp32"})
    result = worker({"shard": np.array([s.to_json() for s in shards])})
    assert list(result["name"]) == ["bad-00000", "bad-00001"] and list(result["documents"]) == [2, 0]
    assert result["code"][0] == "" and result["code"][1] == "E103"
    worker.annotator.annotate = lambda shard: (_ for _ in ()).throw(ValueError(PLANTED))
    crashed = worker({"shard": np.array([shards[0].to_json()])})
    assert crashed["code"][0] == "E900" and "ValueError" in crashed["message"][0]
    assert all(PLANTED not in str(m) for m in [*result["message"], *crashed["message"], *result["fix"]])


def test_connecting_to_a_ray_cluster_never_starts_one_of_its_own():
    calls = []

    class FakeRay:
        initialized = False

        def is_initialized(self):
            return self.initialized

        def init(self, **kwargs):
            calls.append(("init", kwargs))

        def shutdown(self):
            calls.append(("shutdown", {}))

    fake = FakeRay()
    with connected(fake, "10.0.0.1:6379"):
        pass
    assert calls[0][0] == "init" and calls[0][1]["address"] == "10.0.0.1:6379" and calls[1][0] == "shutdown"
    calls.clear()
    fake.initialized = True  # the caller's own session: used as it is, and left open
    with connected(fake, None):
        pass
    assert calls == []


def test_batch_command_through_typer(tmp_path):
    write_jsonl(notes(5), tmp_path / "n.jsonl")
    app = typer.Typer()
    app.command("batch")(batch_command)
    app.command("other")(lambda: None)  # two commands: `batch` is a sub-command, as in medtune's CLI
    args = ["batch", str(MODEL), "--input", str(tmp_path / "n.jsonl"), "--output", str(tmp_path / "out"),
            "--shard-size", "2", "--mode", "fp32", "--no-progress"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "5 documents written" in result.output and "3 shards" in result.output
    again = CliRunner().invoke(app, args + ["--resume"], catch_exceptions=False)
    assert again.exit_code == 0 and "0 documents written" in again.output and "3 already written" in again.output
    assert "--ray-address" in CliRunner().invoke(app, ["batch", "--help"]).output
