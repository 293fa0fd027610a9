"""Property-based: malformed input files never leak note text and never leave files behind.

``medtune predict`` and ``medtune evaluate`` (in-process, through typer's CliRunner, on the tiny NER
model) get malformed files of several formats with a planted identifier in their text. Whatever the
corruption, the command must exit non-zero with a coded error, the identifier must appear neither in
the output nor in the logs, and the output folder must stay empty.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from medtune.cli import app

PLANTED = "ZZPATIENT-SMITH-4711"
runner = CliRunner()

# Words around the identifier; a piece of note text is never a valid id or label, so errors may not quote it.
filler = st.lists(st.sampled_from(["the", "patient", "has", "fever", "no", "cough", "breast", "cancer", ",", ".",
                                   "Mr", "seen", "on", "12/03", "é", "病", "\t", "  "]), min_size=0, max_size=6)


@st.composite
def note_text(draw) -> str:
    before, after = draw(filler), draw(filler)
    return " ".join([*before, PLANTED, *after])


def _jsonl_line(doc_id: str, text: str, **extra) -> str:
    return json.dumps({"id": doc_id, "text": text, **extra}, ensure_ascii=False)


@st.composite
def bad_jsonl(draw) -> tuple[str, bytes, list[str]]:
    text = draw(note_text())
    good = [_jsonl_line(f"g{i}", "The patient has fever.") for i in range(draw(st.integers(0, 3)))]
    kind = draw(st.sampled_from(["span outside", "truncated", "text not a string", "not an object",
                                 "nan", "bad utf8", "span text differs", "duplicate key", "unknown field",
                                 "negative offset"]))
    if kind == "span outside":
        bad = _jsonl_line("b", text, spans=[{"start": 2, "end": len(text) + draw(st.integers(1, 50)),
                                              "label": "Disease"}])
    elif kind == "truncated":
        full = _jsonl_line("b", text)
        bad = full[: draw(st.integers(1, len(full) - 1))]
    elif kind == "text not a string":
        bad = json.dumps({"id": "b", "text": [text, 3]})
    elif kind == "not an object":
        bad = json.dumps(draw(st.sampled_from([[text], text, 7])))
    elif kind == "nan":
        bad = '{"id": "b", "text": ' + json.dumps(text) + ', "metadata": {"score": NaN}}'
    elif kind == "bad utf8":
        bad = _jsonl_line("b", text).replace(PLANTED, PLANTED + "\udcff", 1)
        data = "\n".join(good + [bad]).encode("utf-8", "surrogateescape") + b"\n"
        return "notes.jsonl", data, []
    elif kind == "span text differs":
        bad = _jsonl_line("b", text, spans=[{"start": 0, "end": 3, "label": "Disease", "text": PLANTED}])
    elif kind == "duplicate key":
        bad = '{"id": "b", "text": ' + json.dumps(text) + ', "text": ' + json.dumps(text) + "}"
    elif kind == "unknown field":
        bad = _jsonl_line("b", "x", notes=text)
    else:
        bad = _jsonl_line("b", text, spans=[{"start": -3, "end": 4, "label": "Disease"}])
    name = draw(st.sampled_from(["notes.jsonl", "NOTES.JSONL", "notes.ndjson"]))
    return name, ("\n".join(good + [bad]) + "\n").encode("utf-8"), []


@st.composite
def bad_table(draw) -> tuple[str, bytes, list[str]]:
    delimiter, name, fmt = draw(st.sampled_from([(",", "notes.csv", "csv"), ("\t", "notes.tsv", "tsv")]))
    text = draw(note_text()).replace(delimiter, " ").replace('"', " ").replace("\n", " ")
    kind = draw(st.sampled_from(["missing column", "short row", "unclosed quote", "bad utf8", "no header"]))
    header = delimiter.join(["id", "body"])
    rows = [delimiter.join([f"r{i}", "She has fever."]) for i in range(draw(st.integers(0, 3)))]
    options = ["--format", fmt, "--reader.text_column", "body"]
    if kind == "missing column":
        options = ["--format", fmt, "--reader.text_column", "nope"]
        rows.append(delimiter.join(["rb", text]))
    elif kind == "short row":  # a row without the text cell, then one with it
        rows += ["rb", delimiter.join(["rc", text])]
    elif kind == "unclosed quote":
        rows.append(f'rb{delimiter}"{text}')
    elif kind == "bad utf8":
        data = (header + "\n" + "\n".join(rows + [f"rb{delimiter}{text}"])).encode("utf-8") + b"\xff\xfe\n"
        return name, data, options
    else:
        header = delimiter.join([f"x{PLANTED}", text])
    return name, (header + "\n" + "\n".join(rows) + "\n").encode("utf-8"), options


@st.composite
def bad_pubtator(draw) -> tuple[str, bytes, list[str]]:
    text = draw(note_text()).replace("|", " ").replace("\t", " ")
    kind = draw(st.sampled_from(["offset outside", "end before start", "mention differs", "no title", "bad utf8"]))
    lines = [f"123|t|{text}", "123|a|No cough."]
    if kind == "offset outside":
        lines.append(f"123\t2\t{len(text) + 40}\t{PLANTED}\tDisease\tD1")
    elif kind == "end before start":
        lines.append(f"123\t9\t4\t{PLANTED}\tDisease\tD1")
    elif kind == "bad utf8":
        data = ("\n".join(lines) + "\n").encode("utf-8").replace(PLANTED.encode(), PLANTED.encode() + b"\xc3(")
        return draw(st.sampled_from(["notes.pubtator", "NOTES.PubTator"])), data, []
    elif kind == "mention differs":
        lines.append(f"123\t0\t3\t{PLANTED}\tDisease\tD1")
    else:
        lines = [f"123|a|{text}", f"123\t0\t3\t{PLANTED}\tDisease\tD1"]
    name = draw(st.sampled_from(["notes.pubtator", "NOTES.PubTator"]))
    return name, ("\n".join(lines) + "\n\n").encode("utf-8"), []


@st.composite
def bad_bioc(draw) -> tuple[str, bytes, list[str]]:
    text = draw(note_text()).replace("<", " ").replace("&", " ")
    full = (f"<?xml version='1.0' encoding='UTF-8'?><collection><source>x</source><document><id>d1</id>"
            f"<passage><offset>0</offset><text>{text}</text><annotation id='1'>"
            f"<infon key='type'>Disease</infon><location offset='0' length='{len(text) + 30}'/>"
            f"<text>{PLANTED}</text></annotation></passage></document></collection>")
    kind = draw(st.sampled_from(["truncated", "annotation outside"]))
    data = full[: draw(st.integers(40, len(full) - 20))] if kind == "truncated" else full
    return draw(st.sampled_from(["notes.xml", "NOTES.XML"])), data.encode("utf-8"), []


bad_inputs = st.one_of(bad_jsonl(), bad_table(), bad_pubtator(), bad_bioc())

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])


def _check(result, caplog, out_dir: Path) -> None:
    assert result.exit_code != 0, result.output
    assert "[E" in result.output and "error:" in result.output, result.output
    assert "[E900]" not in result.output, result.output  # malformed input is the user's, not a bug
    assert PLANTED not in result.output
    assert PLANTED not in (result.stderr if result.stderr_bytes is not None else "")
    assert PLANTED not in caplog.text
    assert list(out_dir.iterdir()) == []


def _invoke(args: list) -> object:
    return runner.invoke(app, [str(a) for a in args])


@FUZZ
@given(case=bad_inputs)
def test_predict_on_malformed_files(tiny_ner_model, caplog, case):
    name, data, options = case
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / name).write_bytes(data)
        out_dir = tmp / "out"
        out_dir.mkdir()
        result = _invoke(["predict", tiny_ner_model, tmp / name, *options, "--output", out_dir / "spans.jsonl"])
        _check(result, caplog, out_dir)


@FUZZ
@given(case=bad_inputs)
def test_evaluate_on_malformed_files(tiny_ner_model, caplog, case):
    name, data, options = case
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / name).write_bytes(data)
        out_dir = tmp / "out"
        out_dir.mkdir()
        result = _invoke(["evaluate", tiny_ner_model, "--data", tmp / name, *options,
                          "--output", out_dir / "metrics.json", "--errors", "5"])
        _check(result, caplog, out_dir)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=note_text(), label=st.sampled_from(["Chemical", "Drug", "Gene_or_protein"]))
def test_evaluate_on_labels_the_model_does_not_know(tiny_ner_model, caplog, text, label):
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = text.index(PLANTED)
        span = {"start": start, "end": start + len(PLANTED), "label": label, "text": PLANTED}
        (tmp / "gold.jsonl").write_text(_jsonl_line("g1", text, spans=[span]) + "\n", encoding="utf-8")
        out_dir = tmp / "out"
        out_dir.mkdir()
        result = _invoke(["evaluate", tiny_ner_model, "--data", tmp / "gold.jsonl", "--output",
                          out_dir / "metrics.json"])
        _check(result, caplog, out_dir)
        assert f"'{label}'" in result.output
