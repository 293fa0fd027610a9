"""``medtune deid``: planted PHI of every type leaves no trace in the output (any mode, rules alone or
with a model in the pipeline), the audit, the logs, stderr, or the error of a failing run."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtune.cli import app
from medtune.deid.command import run_deid

GOLDEN_NER = Path(__file__).parent / "fixtures" / "golden" / "ner-linear"

PLANTED_NOTE = (
    "Patient: Mr. Gerry Przybylo, MRN: 40771234, SSN 512-44-9876.\n"
    "Admitted 07/22/2019 from CALVERT HOSPITAL; seen by Dr. Healey on 2019-07-23 and again on July 29th, "
    "follow up 22 Aug 2019 and 8/30.\n"
    "Son Vladimir called from 410-322-1419 (fax: 410-555-0177). E-mail gerry.p@mailbox.org, portal "
    "https://portal.calvertmed.org/p/88, device at 10.20.30.40.\n"
    "A 93 yo man, lives at 19 Clover St., Baltimore, MD 21286. Daughter Grace of Reisterstown visited. "
    "PRZYBYLO aware.\n")
PLANTED = ["Gerry", "Przybylo", "40771234", "512-44-9876", "07/22/2019", "CALVERT", "Healey", "2019-07-23",
           "July 29th", "22 Aug 2019", "8/30", "Vladimir", "410-322-1419", "410-555-0177", "gerry.p@mailbox.org",
           "portal.calvertmed.org", "10.20.30.40", "93 yo", "Clover", "21286", "Grace", "Reisterstown"]


def _leaks(text: str) -> list[str]:
    low = text.lower()
    return [p for p in PLANTED if p.lower() in low]


def _run(args: list[str]):
    return CliRunner().invoke(app, ["deid", *args], catch_exceptions=False)


@pytest.fixture()
def note(tmp_path) -> Path:
    path = tmp_path / "in" / "note-1.txt"
    path.parent.mkdir()
    path.write_text(PLANTED_NOTE, encoding="utf-8")
    return path


@pytest.fixture()
def model_pipeline(tmp_path) -> Path:
    """A pipeline whose deid component runs a tiny NER model too (labels of another corpus: OTHER)."""
    path = tmp_path / "deid-model.yaml"
    path.write_text(f"name: deid\ncomponents:\n  - kind: deid\n    model: {GOLDEN_NER}\n    outside_weight: 0.5\n"
                    "    mode: fp32\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("mode", ["surrogate", "tag", "mask"])
@pytest.mark.parametrize("with_model", [False, True], ids=["rules", "rules+model"])
def test_no_planted_phi_survives(mode, with_model, note, model_pipeline, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    out, audit = tmp_path / "out", tmp_path / "audit.jsonl"
    args = [str(note), "--output", str(out), "--replace", mode, "--audit", str(audit)]
    if with_model:
        args += ["--pipeline", str(model_pipeline)]
    result = _run(args)
    assert result.exit_code == 0, result.output
    text = (out / "note-1.txt").read_text(encoding="utf-8")
    assert _leaks(text) == [], text
    assert _leaks(result.output) == [] and _leaks(result.stderr) == [] and _leaks(caplog.text) == []
    records = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    assert _leaks(audit.read_text(encoding="utf-8")) == [] and all("text" not in r for r in records)
    sources = {r["source"] for r in records}
    assert "rules" in sources and (any("model" in s for s in sources) == with_model)
    assert {"NAME", "DATE", "PHONE", "EMAIL", "URL", "IP", "ID", "AGE", "LOCATION"} <= {r["type"] for r in records}
    if mode == "mask":
        assert len(text) == len(PLANTED_NOTE) and text.count("\n") == PLANTED_NOTE.count("\n")
    for r in records:  # the audit's offsets point at the PHI and at its replacement
        a, b = r["original"]
        na, nb = r["deid"]
        assert PLANTED_NOTE[a:b].strip() and text[na:nb].strip()


def test_the_audit_holds_the_text_only_when_asked(note, tmp_path):
    audit = tmp_path / "audit.jsonl"
    result = _run([str(note), "--output", str(tmp_path / "o"), "--audit", str(audit), "--audit-include-text"])
    assert result.exit_code == 0
    records = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    assert {"Healey", "410-322-1419"} <= {r["text"] for r in records}
    assert all(PLANTED_NOTE[r["original"][0]:r["original"][1]] == r["text"] for r in records)


def test_formats_in_and_out(note, tmp_path):
    folder = note.parent
    (folder / "note-2.txt").write_text("Seen by Dr. Healey on 7/22.", encoding="utf-8")
    jsonl = tmp_path / "notes.jsonl"
    jsonl.write_text(json.dumps({"id": "n1", "text": PLANTED_NOTE, "metadata": {"patient": "p1"},
                                 "spans": [{"start": 13, "end": 18, "label": "X", "text": "Gerry"}]}) + "\n",
                     encoding="utf-8")
    out = tmp_path / "out"
    result = _run([str(folder), str(jsonl), "inline text by Dr. Healey", "--text", "call 410-322-1419",
                   "--output", str(out), "--replace", "tag"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["note-1.txt", "note-2.txt", "notes.jsonl", "text-1.txt",
                                                     "text-2.txt"]
    assert (out / "note-2.txt").read_text(encoding="utf-8") == "Seen by Dr. [NAME] on [DATE]."
    assert (out / "text-2.txt").read_text(encoding="utf-8") == "call [PHONE]"
    doc = json.loads((out / "notes.jsonl").read_text(encoding="utf-8"))
    assert _leaks(json.dumps(doc)) == [] and doc["metadata"]["patient"] == "p1"
    assert doc["spans"][0]["text"] == "[NAME]" and doc["metadata"]["deid"]["offsets"]
    assert "5 documents de-identified" in result.output
    single = tmp_path / "all.jsonl"
    assert _run([str(folder), "--output", str(single)]).exit_code == 0
    assert [json.loads(line)["id"] for line in single.read_text(encoding="utf-8").splitlines()] == ["note-1", "note-2"]


def test_a_key_file_makes_runs_reproducible(note, tmp_path):
    key = tmp_path / "secret.key"
    key.write_text("0123456789abcdef0123", encoding="utf-8")
    texts = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        assert _run([str(note), "--output", str(out), "--date-shift-key", str(key)]).exit_code == 0
        texts.append((out / "note-1.txt").read_text(encoding="utf-8"))
    assert texts[0] == texts[1]
    assert _run([str(note), "--output", str(tmp_path / "run2")]).exit_code == 0
    assert (tmp_path / "run2" / "note-1.txt").read_text(encoding="utf-8") != texts[0]  # a random key


def test_a_failing_run_names_the_line_writes_nothing_and_shows_no_phi(note, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    bad = tmp_path / "bad.jsonl"
    good = json.dumps({"id": "a", "text": PLANTED_NOTE})
    for second in ('{"id": "b", "text": "Gerry Przybylo 410-322-1419", "spans": 5}',
                   "Gerry Przybylo 410-322-1419 {not json", '{"id": "Przybylo", "text": 7}'):
        bad.write_text(good + "\n" + second + "\n", encoding="utf-8")
        out, audit = tmp_path / "out", tmp_path / "audit.jsonl"
        result = _run([str(note), str(bad), "--output", str(out), "--audit", str(audit)])
        assert result.exit_code == 2 and f"{bad}:2" in result.stderr, result.stderr
        assert _leaks(result.output) == [] and _leaks(result.stderr) == [] and _leaks(caplog.text) == []
        assert not out.exists() or list(out.iterdir()) == []  # nothing half-written, not even the first note
        assert not audit.exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporaries left


def test_bad_options_are_refused_before_any_work(note, tmp_path):
    for args, code, message in [
        (["--replace", "blur"], "E300", "use one of surrogate, tag, mask"),
        (["--no-rules"], "E300", "deid needs rules: true, a model, or both"),
        (["--date-shift-key", str(tmp_path / "none.key")], "E300", "does not exist"),
        (["--pipeline", str(Path(__file__).parents[1] / "pipelines" / "clinical-note.yaml")], "E300",
         "has no deid component"),
    ]:
        result = _run([str(note), "--output", str(tmp_path / "o"), *args])
        assert result.exit_code == 2 and code in result.stderr and message in result.stderr, result.stderr
    other = tmp_path / "other"
    other.mkdir()
    (other / "note-1.txt").write_text("x", encoding="utf-8")
    result = _run([str(note), str(other / "note-1.txt"), "--output", str(tmp_path / "o")])
    assert result.exit_code == 2 and "two inputs would both be written" in result.stderr
    result = _run([str(note.parent), "--output", str(note.parent)])
    assert result.exit_code == 2 and "would overwrite the input" in result.stderr
    result = _run([str(tmp_path / "notes.csv"), "--output", str(tmp_path / "o")])
    assert result.exit_code == 2 and "E100" in result.stderr
    assert _run(["--output", str(tmp_path / "o")]).exit_code == 2


def test_run_deid_is_the_plain_function_behind_the_command(note, tmp_path):
    result = run_deid([str(note)], tmp_path / "o", replace="tag")
    assert result.documents == 1 and result.rules_only and result.replaced["NAME"] >= 4
    assert result.sources == {"rules": sum(result.replaced.values())}
