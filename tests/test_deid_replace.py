"""Replacement: surrogate shapes and consistency under a key, date shifts, tag and mask, the offset
map, the deid component and ``medtune.deid(...)``."""

from __future__ import annotations

import datetime as dt
import random
import re

import pytest

import medtune
from medtune.deid import surrogates as surrogates_module
from medtune.deid.dates import shift_date, shift_time
from medtune.deid.deidentify import Deidentifier
from medtune.deid.replace import MODES, replace_document, replace_text, to_deid, to_original
from medtune.deid.surrogates import Surrogates, read_key
from medtune.deid.types import PhiCategory as C
from medtune.document import Document, Span
from medtune.errors import ConfigError
from medtune.pipeline import Pipeline

KEY = b"0123456789abcdef-test-key"
NOTE = ("Mr. Gerry Masci seen by Dr. Healey on 7/22/2019. Call 410-322-1419. MASCI aware; Dr. Healey "
        "paged again on 7/25/2019. MRN: 12345678. 93 yo.")


def _names(doc: Document) -> list[str]:
    return [doc.text[r["start"]:r["end"]] for r in doc.metadata["deid"]["replaced"] if r["type"] == "NAME"]


# ------------------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("category,text,shape", [
    (C.NAME, "MASCI", r"[A-Z]{2,}"), (C.NAME, "masci", r"[a-z]{2,}"), (C.NAME, "Gerry Masci", r"[A-Z][a-z]+ [A-Z][a-z]+"),
    (C.NAME, "J. Chang", r"[A-Z]\. [A-Z][a-z]+"), (C.NAME, "EDWARD C. JONES", r"[A-Z]+ [A-Z]\. [A-Z]+"),
    (C.NAME, "williams-nuzzo", r"[a-z]+-[a-z]+"), (C.INITIALS, "J.S.", r"[A-Z]\.[A-Z]\."),
    (C.PHONE, "410-322-1419", r"[2-9][0-9]{2}-555-01[0-9]{2}"), (C.PHONE, "(301) 944 5032 x45", r"\([2-9][0-9]{2}\) 555 01[0-9]{2} x[0-9]{2}"),
    (C.PHONE, "83554", r"[0-9]{5}"), (C.ID, "MD12345", r"[A-Z]{2}[0-9]{5}"), (C.ID, "123-45-6789", r"[0-9]{3}-[0-9]{2}-[0-9]{4}"),
    (C.AGE, "93", r"90\+"), (C.EMAIL, "jane.doe@foo.org", r"[a-z]{4}\.[a-z]{3}@example\.(org|com|net)"),
    (C.URL, "https://portal.foo.org/p?id=7", r"https://example\.org/[a-z]\?[a-z]{2}=[0-9]"),
    (C.IP, "10.1.2.3", r"(192\.0\.2|198\.51\.100|203\.0\.113)\.[0-9]{1,3}"), (C.LOCATION, "CALVERT", r"[A-Z]{4,}"),
    (C.LOCATION, "GH", r"[A-Z]{2}"), (C.LOCATION, "21201", r"[0-9]{5}"), (C.LOCATION, "19 Clover St.", r"[0-9]{2} [A-Z][a-z]+ St\."),
    (C.DATE, "07/22/2019", r"[0-9]{2}/[0-9]{2}/[0-9]{4}"), (C.DATE, "2019-07-22", r"[0-9]{4}-[0-9]{2}-[0-9]{2}"),
    (C.DATE, "22 Jul 2019", r"[0-9]{1,2} [A-Z][a-z]{2} [0-9]{4}"), (C.DATE, "July 22nd", r"[A-Z][a-z]+ [0-9]{1,2}(st|nd|rd|th)"),
    (C.TIME, "14:30", r"[0-9]{2}:[0-9]{2}"), (C.OTHER, "rg17", r"[a-z]{2}[0-9]{2}"),
])
def test_surrogates_keep_the_shape(category, text, shape):
    value = Surrogates(KEY, "p1", {text.lower()}).make(category, text)
    assert re.fullmatch(shape, value), (text, value)
    assert value != text


def test_names_come_from_the_shipped_lists_and_keep_their_case():
    s = Surrogates(KEY, "p1")
    first, last = s.make(C.NAME, "Gerry Masci").split()
    assert first in surrogates_module._names("first_names.txt") and last in surrogates_module._names("last_names.txt")
    assert s.make(C.NAME, "MASCI") == last.upper() and s.make(C.NAME, "masci") == last.lower()


def test_a_surrogate_never_equals_a_real_phi_string_of_the_note(monkeypatch):
    surrogates_module._names.cache_clear()
    pool = ("Smith", "Jones", "Brown", "White")
    monkeypatch.setattr(surrogates_module, "_names", lambda file: pool)
    real = {"smith", "jones"}
    for seed in range(20):
        s = Surrogates(KEY + str(seed).encode(), "p1", set(real))
        a, b = s.make(C.NAME, "Smith"), s.make(C.NAME, "Jones")
        assert {a.lower(), b.lower()} == {"brown", "white"}  # redrawn off the real names, and distinct


def test_dates_shift_in_their_own_format():
    cases = [("7/22", "9/3"), ("07/22/2019", "09/03/2019"), ("2019-07-22", "2019-09-03"), ("22 Jul 2019", "3 Sep 2019"),
             ("July 22nd", "September 3rd"), ("JUL-22", "SEP-3"), ("may 16, 2015", "june 28, 2015"), ("4-21-17", "6-3-17"),
             ("MARCH OF 1993", "APRIL OF 1993"), ("friday", "saturday"), ("Sept. 3", "Oct. 16")]
    assert [(text, shift_date(text, 43)) for text, _ in cases] == cases
    assert shift_date("1992", 800) == "1994" and shift_date("'92", -800) == "'90" and shift_date("christmas", 43) is None
    assert shift_time("14:30", 125) == "16:35" and shift_time("2330", 125) == "0135" and shift_time("9:30am", 180) == "12:30pm"
    assert shift_time("x", 5) is None


def test_a_patient_has_one_shift_that_keeps_intervals_and_weekdays_move():
    s = Surrogates(KEY, "p1")
    assert 365 <= abs(s.days) <= 10 * 365 and s.days % 7 and s.days % 365
    a, b = dt.date(2019, 7, 22), dt.date(2019, 9, 30)
    sa, sb = (dt.datetime.strptime(s.make(C.DATE, d.strftime("%m/%d/%Y")), "%m/%d/%Y").date() for d in (a, b))
    assert (sb - sa) == (b - a) and sa != a


# ------------------------------------------------------------------------------------------ consistency
def test_the_same_string_gets_the_same_surrogate_within_a_note():
    out = Deidentifier(key=KEY)([Document(id="n1", text=NOTE)])[0]
    names = _names(out)
    full = next(n for n in names if " " in n)  # Gerry Masci -> First Last
    upper = [n for n in names if n.isupper()]  # MASCI (found again, after Mr. Gerry Masci) -> LAST
    assert upper == [full.split()[1].upper()] and "MASCI" not in out.text and "Masci" not in out.text
    healey = [out.text[r["start"]:r["end"]] for r in out.metadata["deid"]["replaced"] if r["type"] == "NAME"
              and not out.text[r["start"]:r["end"]].isupper() and " " not in out.text[r["start"]:r["end"]]]
    assert len(healey) == 2 and len(set(healey)) == 1


def test_one_key_and_patient_give_the_same_surrogates_and_shift_across_notes():
    a = Document(id="n1", text="Dr. Healey saw him on 7/22/2019.", metadata={"patient": "p1"})
    b = Document(id="n2", text="DR HEALEY called 7/29/2019.", metadata={"patient": "p1"})
    c = Document(id="n3", text="Dr. Healey saw him on 7/22/2019.", metadata={"patient": "p2"})
    first = Deidentifier(key=KEY)([a, b, c])
    again = Deidentifier(key=KEY)([b])[0]
    assert again.text == first[1].text  # another run, the same key: the same output
    name_a, name_b = _names(first[0])[0], _names(first[1])[0]
    assert name_a.upper() == name_b
    da, db = (dt.datetime.strptime(re.search(r"[0-9/]{8,10}", d.text).group(), "%m/%d/%Y") for d in first[:2])
    assert (db - da).days == 7  # the interval between two notes of one patient survives
    assert first[2].text != first[0].text  # another patient: other surrogates and another shift


def test_without_a_key_each_run_draws_its_own(tmp_path):
    assert Deidentifier().key != Deidentifier().key and not Deidentifier().keyed
    key = tmp_path / "deid.key"
    key.write_text("a-secret-of-enough-length\n", encoding="utf-8")
    assert Deidentifier(key_file=key).key == b"a-secret-of-enough-length"
    key.write_text("short", encoding="utf-8")
    with pytest.raises(ConfigError, match="holds 5 bytes, fewer than 16") as err:
        read_key(key)
    assert "short" not in str(err.value)
    with pytest.raises(ConfigError, match="does not exist"):
        read_key(tmp_path / "missing.key")


# ------------------------------------------------------------------------------------------ modes and offsets
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_removes_the_phi_and_the_offset_map_round_trips(mode):
    text = NOTE
    spans = Deidentifier(key=KEY).detector.detect([Document(id="n", text=text)])[0]
    phi = {text[s.start:s.end] for s in spans}
    assert {"Gerry Masci", "MASCI", "Healey", "7/22/2019", "410-322-1419", "12345678", "93"} <= phi
    doc = Document(id="n", text=text)
    for word in ("seen by", "Call", "aware", "yo."):
        start = text.index(word)
        doc.add_span(start, start + len(word), "Cue")
    doc.add_span(text.index("Gerry"), text.index("Gerry") + len("Gerry MASCI seen"), "Over")  # overlaps PHI
    out, done = replace_document(doc, spans, mode, KEY)
    out.validate()
    mapping = out.metadata["deid"]["offsets"]
    assert len(done) == len(spans) == len(mapping)
    for value in phi - {"93"}:
        assert value not in out.text
    for span, old in zip(out.spans, doc.spans):
        assert to_original(mapping, span.start, span.end) == (old.start, old.end)
        assert span.text == out.text[span.start:span.end]
        if old.label == "Cue":
            assert span.text == old.text
    assert "Masci" not in out.spans[-1].text  # a span over PHI keeps no PHI text
    rng = random.Random(0)
    for _ in range(200):  # any span of the original maps there and back, or out to whole PHI
        a = rng.randrange(len(text))
        b = rng.randrange(a + 1, len(text) + 1)
        na, nb = to_deid(mapping, a, b)
        oa, ob = to_original(mapping, na, nb)
        assert oa <= a and ob >= b
        inside = any(s.start < a < s.end or s.start < b < s.end for s in spans)
        assert (oa, ob) == (a, b) or inside
    if mode == "mask":
        in_phi = [any(s.start <= i < s.end for s in spans) for i in range(len(text))]
        assert out.text == "".join("*" if inside and not c.isspace() else c for c, inside in zip(text, in_phi))
    if mode == "tag":
        assert "[NAME]" in out.text and "[DATE]" in out.text and "[PHONE]" in out.text and "[ID]" in out.text


def test_mask_keeps_white_space_and_tags_name_the_category():
    spans = [Span(0, 9, "HCPName"), Span(13, 17, "DATE")]
    assert replace_text("Mary\nJane on 7/22", spans, "mask")[0] == "****\n**** on ****"
    assert replace_text("Mary Jane on 7/22", spans, "tag")[0] == "[NAME] on [DATE]"
    with pytest.raises(ConfigError, match="use one of surrogate, tag, mask"):
        replace_text("x", [], "blur")


def test_the_pair_text_and_moved_metadata_offsets():
    doc = Document(id="q", text="Dr. Healey saw her.", text_pair="Did Dr. Healey call?",
                   metadata={"sentences": [[0, 19]], "tokens": [[0, 3], [4, 10], [11, 14]]})
    out = Deidentifier(key=KEY, replace="tag")([doc])[0]
    assert out.text == "Dr. [NAME] saw her." and out.text_pair == "Did Dr. [NAME] call?"
    assert out.metadata["sentences"] == [[0, 19]] and out.metadata["tokens"] == [[0, 3], [4, 10], [11, 14]]
    assert out.metadata["deid"]["pair_offsets"] == [[8, 14, 8, 14]]


# ------------------------------------------------------------------------------------------ API and component
def test_medtune_deid_is_callable_on_texts_and_documents():
    single = medtune.deid("Seen by Dr. Healey on 7/22.", replace="tag")
    assert isinstance(single, Document) and single.text == "Seen by Dr. [NAME] on [DATE]."
    many = medtune.deid(["Dr. Healey", Document(id="x", text="on 7/22")], replace="mask")
    assert [d.text for d in many] == ["Dr. ******", "on ****"] and many[1].id == "x"
    import medtune.deid as package

    assert package is medtune.deid and callable(package)
    with pytest.raises(ConfigError, match="takes texts or Documents"):
        medtune.deid([42])


def test_the_deid_component_replaces_phi_first(tmp_path):
    key = tmp_path / "k.key"
    key.write_text("pipeline-secret-key-123", encoding="utf-8")
    path = tmp_path / "p.yaml"
    path.write_text("name: t\ncomponents:\n  - kind: deid\n    replace: surrogate\n    key_file: k.key\n"
                    "  - kind: sentences\n", encoding="utf-8")
    pipe = Pipeline.from_yaml(path)
    doc = Document(id="d", text="Dr. Healey saw him on 7/22. He is well.")
    doc.add_span(4, 10, "Person")
    out = pipe(doc)
    assert "Healey" not in out.text and "7/22" not in out.text
    assert out.spans[0].text == out.text[out.spans[0].start:out.spans[0].end] != "Healey"
    record = out.metadata["deid"]
    assert [r["type"] for r in record["replaced"]] == ["NAME", "DATE"] and "Healey" not in str(record)
    assert out.metadata["sentences"][-1][1] == len(out.text)
    assert pipe(doc).text == out.text  # the key file: the same surrogates every time
    for bad, message in [("    rules: false\n", "deid needs rules: true, a model, or both"),
                         ("    outside_weight: 0.5\n", "give a model as well"), ("    replce: tag\n", "unknown key")]:
        path.write_text("name: t\ncomponents:\n  - kind: deid\n" + bad, encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            Pipeline.from_yaml(path)
