"""The PHI pattern library: every pattern's own examples, what it must leave alone, and the detector
(rules united with a model, propagation of names)."""

from __future__ import annotations

import pytest

from medtune.deid import detect as detect_module
from medtune.deid.detect import PhiDetector, merge_spans, propagate, rule_spans
from medtune.deid.rules import PATTERNS, common_words, find_phi, is_common_word
from medtune.deid.types import PhiCategory
from medtune.document import Document, Span
from medtune.errors import ConfigError, ModelError


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.name)
def test_every_pattern_finds_its_positive_examples(pattern):
    assert pattern.positives, f"{pattern.name} has no positive example"
    for text, phi in pattern.positives:
        found = [text[a:b] for a, b in pattern.finditer(text)]
        assert phi in found, (pattern.name, text, found)


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.name)
def test_every_pattern_leaves_its_negative_examples_alone(pattern):
    assert pattern.negatives, f"{pattern.name} has no negative example"
    for text in pattern.negatives:
        assert [text[a:b] for a, b in pattern.finditer(text)] == [], (pattern.name, text)


def test_pattern_names_are_unique_and_each_has_a_category():
    names = [p.name for p in PATTERNS]
    assert len(names) == len(set(names))
    assert all(isinstance(p.category, PhiCategory) for p in PATTERNS)
    covered = {p.category for p in PATTERNS}
    for needed in ("DATE", "TIME", "PHONE", "EMAIL", "URL", "IP", "ID", "AGE", "NAME", "LOCATION"):
        assert PhiCategory(needed) in covered


CLINICAL = ("BP 120/80, HR 92, RR 18, SAT 95% ON 2L NP. K 3.9, NA 139, BUN 54, CR 2.8; INR 2.0; PT 17.5. "
            "2 UNITS PRBC, 2 FFP, HEPARIN AT 1100 UNITS/HR, 5 MG COUMADIN. PSV 10/5 40%, CPAP 5/5. "
            "STRENGTH 5/5 BILAT, PAIN 8/10. 1/2 NS AT 100 CC/HR. ABG 7.35/66/55. NOTE 1900-0700. "
            "A/P- PT WITH CHF, MONITOR MS. OOB AS TOL. E. COLI IN URINE, C. DIFF NEG. DR AWARE.")


def test_lab_values_doses_vitals_and_settings_are_not_phi():
    assert [(m.pattern, CLINICAL[m.start:m.end]) for m in find_phi(CLINICAL)] == []
    assert find_phi(CLINICAL.lower()) == []


def test_names_after_cues_in_every_case():
    for text, name in [("seen by dr healey today", "healey"), ("SEEN BY DR HEALEY TODAY", "HEALEY"),
                       ("Seen by Dr. Healey today", "Healey"), ("MR. EDWIN PRZYBYLO IS 83", "EDWIN PRZYBYLO"),
                       ("son Bill called", "Bill"), ("SON BILL CALLED", "BILL")]:
        assert name in [text[m.start:m.end] for m in find_phi(text)], text


def test_dates_of_every_common_form():
    note = ("Seen 7/22, 07/22/2019, 2019-07-22, 22 Jul 2019, July 22nd, Jul-22, MI '92, CABG in 1992 and "
            "on may 16, 2015.")
    found = {note[m.start:m.end] for m in find_phi(note) if m.category is PhiCategory.DATE}
    assert {"7/22", "07/22/2019", "2019-07-22", "22 Jul 2019", "July 22nd", "Jul-22", "92", "1992",
            "may 16, 2015"} <= found


def test_common_words_are_never_names():
    assert "aware" in common_words() and is_common_word("Called") and is_common_word("visiting")
    assert not is_common_word("Przybylo")


def test_hostile_text_is_scanned_in_one_pass():
    # long runs of digits, slashes and capitals (what makes a careless regex backtrack)
    text = ("1/2/" * 20000) + ("DR " * 20000) + ("9" * 50000) + ("A. " * 20000)
    assert isinstance(find_phi(text), list)


def test_rule_spans_carry_their_source_and_pattern():
    spans = rule_spans("Call 410-322-1419 today.")
    assert [(s.label, s.attributes["source"], s.attributes["patterns"]) for s in spans] == [
        ("PHONE", "rules", ["phone", "phone_keyword"])]


def test_overlapping_spans_merge_into_their_union_and_touching_ones_stay_apart():
    a = Span(0, 5, "NAME", attributes={"source": "rules", "patterns": ["name_title"]})
    b = Span(3, 12, "HCPName", attributes={"source": "model"})
    c = Span(12, 15, "DATE", attributes={"source": "rules", "patterns": ["date_md"]})
    merged = merge_spans([c, b, a])
    assert [(s.start, s.end, s.label, s.attributes["source"]) for s in merged] == [
        (0, 12, "HCPName", "model+rules"), (12, 15, "DATE", "rules")]
    assert merged[0].attributes["patterns"] == ["name_title"]


def test_a_name_found_once_is_found_everywhere_in_the_note():
    text = "Dr. Przybylo saw the pt. PRZYBYLO aware. przybylo's note. Son called; son aware."
    spans = propagate(text, rule_spans(text))
    assert {text[s.start:s.end] for s in spans} >= {"Przybylo", "PRZYBYLO", "przybylo"}
    weak = "son Aware called"  # a weak cue does not spread its word through the note
    assert all(not s.attributes.get("propagated") for s in propagate(weak, rule_spans(weak)))


class _FakePredictor:
    pass


def _fake_model_api(found):
    calls = {}

    def load_phi_model(path, outside_weight=None, **kwargs):
        calls["load"] = (str(path), outside_weight)
        return _FakePredictor()

    def predict_phi(predictor, docs, batch_size=16):
        calls["predict"] = [d.text for d in docs]
        return [[Span(a, b, label, score=0.9, attributes={"source": "model"}) for a, b, label in found(d.text)]
                for d in docs]

    return calls, lambda: (load_phi_model, predict_phi)


def test_the_detector_unites_rules_and_model(monkeypatch, tmp_path):
    text = "Dr. Smith sent her to Hollister on 7/22."
    calls, api = _fake_model_api(lambda t: [(t.index("Hollister"), t.index("Hollister") + 9, "Location"),
                                            (t.index("Smith") - 4, t.index("Smith") + 5, "HCPName")])
    monkeypatch.setattr(detect_module, "_model_api", api)
    (tmp_path / "m").mkdir()
    detector = PhiDetector(model=tmp_path / "m", outside_weight=0.1, batch_size=4)
    spans = detector.detect([Document(id="d", text=text, spans=[Span(0, 3, "X")])])[0]
    assert calls["load"] == (str(tmp_path / "m"), 0.1) and calls["predict"] == [text]
    got = [(text[s.start:s.end], s.label, s.attributes["source"]) for s in spans]
    assert got == [("Dr. Smith", "HCPName", "model+rules"), ("Hollister", "Location", "model"),
                   ("7/22", "DATE", "rules")]
    assert PhiDetector(rules=False, model=tmp_path / "m").detect([Document(id="d", text=text)])[0]


def test_the_detector_needs_something_to_detect_with_and_an_existing_model(tmp_path):
    with pytest.raises(ConfigError, match="both are off"):
        PhiDetector(rules=False)
    with pytest.raises(ModelError, match="does not exist"):
        PhiDetector(model=tmp_path / "missing").detect([Document(id="d", text="x")])


@pytest.mark.data
def test_the_rules_on_the_train_and_dev_notes(data_dir):
    """Rules alone on the patients the rules were designed on (the train and dev splits): precise,
    with the recall the model is there to complete. Test patients are not looked at here."""
    from medtune.datasets import load as load_corpus
    from medtune.deid.evaluate import binary_token_recall

    if not (data_dir / "physionet_deid" / "id.text").is_file():
        pytest.skip("the PhysioNet deid corpus is not under MEDTUNE_DATA_DIR")
    docs = load_corpus("physionet-deid", "train") + load_corpus("physionet-deid", "dev")
    detector = PhiDetector()
    recall, precision = binary_token_recall(docs, detector.detect(docs))
    assert precision >= 0.90 and recall >= 0.70, (precision, recall)


def test_clock_times_are_replaced_only_when_asked():
    text = "Seen 7/22 at 14:30 in the unit."
    default = PhiDetector().detect_text(text)
    assert [text[s.start:s.end] for s in default] == ["7/22"]  # not a Safe Harbor identifier: off by default
    asked = PhiDetector(times=True).detect_text(text)
    assert [text[s.start:s.end] for s in asked] == ["7/22", "14:30"]
