"""What is not PHI though the model may mark it (medtune.deid.not_phi): Safe Harbor's exceptions and
numbers that measure; the detector, the tuner and the command use it, and it can be turned off."""

from __future__ import annotations

import pytest
from test_deid_rules import _fake_model_api

from medtune.deid import detect as detect_module
from medtune.deid import model as model_module
from medtune.deid.command import build_pipeline
from medtune.deid.detect import PhiDetector
from medtune.deid.not_phi import drop_not_phi, not_phi_reason, regions
from medtune.document import Document, Span


def _span(text: str, phi: str, label: str) -> Span:
    start = text.index(phi)
    return Span(start, start + len(phi), label)


NOT_PHI = [
    ("53 YO FEMALE FROM THE BAHAMAS- H/O UNSTABLE ANGINA", "BAHAMAS", "Location", "region"),
    ("CAME TO VISIT SISTER IN MASSACHUSETTS AND DEVELOPED CP", "MASSACHUSETTS", "Location", "region"),
    ("moved here from Puerto Rico in", "Puerto Rico", "Location", "region"),
    ("This 87 year old female with PMH", "87", "DateYear", "age"),
    ("pt is a 45 yo man", "45", "Age", "age"),
    ("a 72-year-old woman", "72", "Date", "age"),
    ("age 61, admitted", "61", "Age", "age"),
    ("formula will be changed to 3/4 str Nepro", "3/4", "Date", "measurement"),
    ("strength 5/5 in all", "5/5", "Date", "measurement"),
    ("WITH ABG 11/31/7.45. PLACED ON CPAP", "11/31", "Date", "measurement"),
    ("cath after experiencing 6/10 cp after riding", "6/", "Date", "measurement"),
    ("pain 7/10 relieved by MSO4", "7/10", "Date", "measurement"),
]

STILL_PHI = [
    ("This 92 year old female", "92", "Age"),  # over 89: an identifier
    ("went to UOf Maryland Hosp and had", "Maryland", "Location"),  # an institution
    ("rehab at Maryland Rehab. Will notify", "Maryland", "Location"),
    ("lives in New York with her son", "New York", "Location"),  # also a city
    ("lives in Hollister with her son", "Hollister", "Location"),
    ("transferred to Quartermain.8/31. Readmitted", "8/31", "Date"),
    ("11/21.93  neuro: pt alert", "11/21.93", "Date"),  # m/d.yy
    ("chest pain since 6/10 and", "6/10", "Date"),  # a pain word, but not next to the number
    ("dressing changed 7/22 and", "7/22", "Date"),
    ("7/22 x-ray done", "7/22", "Date"),
    ("seen on 87 Elm St", "87", "Location"),
    ("Massachusetts", "Massachusetts", "HCPName"),  # only locations are regions
]


@pytest.mark.parametrize(("text", "phi", "label", "reason"), NOT_PHI, ids=[f"{r}:{p}" for _, p, _, r in NOT_PHI])
def test_what_safe_harbor_does_not_count_and_numbers_that_measure_are_not_phi(text, phi, label, reason):
    assert not_phi_reason(text, _span(text, phi, label)) == reason


@pytest.mark.parametrize(("text", "phi", "label"), STILL_PHI, ids=[p for _, p, _ in STILL_PHI])
def test_everything_else_stays_phi(text, phi, label):
    assert not_phi_reason(text, _span(text, phi, label)) is None


def test_the_region_list_has_the_states_and_countries_but_not_the_city_names():
    names = regions()
    assert {"massachusetts", "bahamas", "district of columbia", "united kingdom", "georgia"} <= names
    assert not {"new york", "washington", "singapore", ""} & names
    assert all(name == name.strip().lower() for name in names)


def test_drop_not_phi_keeps_the_order_and_the_other_spans():
    text = "Dr. Smith saw the 87 year old from Ohio on 7/22."
    spans = [_span(text, "Smith", "HCPName"), _span(text, "87", "Age"), _span(text, "Ohio", "Location"),
             _span(text, "7/22", "Date")]
    assert [text[s.start:s.end] for s in drop_not_phi(text, spans)] == ["Smith", "7/22"]


def test_the_detector_drops_the_models_not_phi_spans_unless_told_to_keep_them(monkeypatch, tmp_path):
    text = "53 YO FEMALE FROM THE BAHAMAS, 87 year old, had 6/10 cp; seen by Dr Zork on 7/22."
    marked = ("BAHAMAS", "87", "6/10", "Zork")
    _, api = _fake_model_api(lambda t: [(t.index(p), t.index(p) + len(p), label) for p, label in
                                        zip(marked, ("Location", "DateYear", "Date", "HCPName"))])
    monkeypatch.setattr(detect_module, "_model_api", api)
    (tmp_path / "m").mkdir()
    doc = Document(id="d", text=text)
    found = PhiDetector(model=tmp_path / "m").detect([doc])[0]
    assert [text[s.start:s.end] for s in found] == ["Zork", "7/22"]
    kept = PhiDetector(model=tmp_path / "m", not_phi=False).detect([doc])[0]
    assert [text[s.start:s.end] for s in kept] == ["BAHAMAS", "87", "6/10", "Zork", "7/22"]


def test_the_tuner_measures_what_the_detector_will_run(monkeypatch):
    from helpers import ner_docs
    from test_deid_model import GOLDEN, _pseudo_gold

    from medtune.deid.model import load_phi_model, tune_outside_weight

    docs = ner_docs(8, repeat=2)
    predictor = load_phi_model(GOLDEN / "ner-linear", mode="fp32")
    gold = _pseudo_gold(GOLDEN / "ner-linear", docs, 1e-3)
    monkeypatch.setattr(model_module, "drop_not_phi", lambda text, spans: [])  # as if nothing were PHI
    dropped = tune_outside_weight(predictor, gold, target_recall=1.0, weights=(1.0, 1e-3))
    assert dropped.not_phi and dropped.to_dict()["not_phi"] is True
    assert all(row["recall"] == 0.0 for row in dropped.table)
    kept = tune_outside_weight(predictor, gold, target_recall=1.0, weights=(1.0, 1e-3), not_phi=False)
    assert kept.reached and not kept.to_dict()["not_phi"]


def test_the_command_and_the_pipeline_pass_the_switch_on():
    def config(**options):
        pipe = build_pipeline(None, rules=None, model=None, outside_weight=None, replace=None, key_file=None,
                              **options)
        return pipe.components[0].config

    assert config().not_phi is True and config().times is False
    assert config(not_phi=False).not_phi is False
    assert config(times=True).times is True


@pytest.mark.data
def test_no_gold_phi_of_the_train_and_dev_notes_is_called_not_phi(data_dir):
    """The filter's safety check on the notes it may be looked at with (test patients are not): not one
    gold PHI span of the train and dev splits is something it would drop."""
    from medtune.datasets import load as load_corpus

    if not (data_dir / "physionet_deid" / "id.text").is_file():
        pytest.skip("the PhysioNet deid corpus is not under MEDTUNE_DATA_DIR")
    docs = load_corpus("physionet-deid", "train") + load_corpus("physionet-deid", "dev")
    flagged = [(doc.id, span.label, not_phi_reason(doc.text, span)) for doc in docs for span in doc.spans
               if not_phi_reason(doc.text, span) is not None]  # ids and labels only: no PHI in the message
    assert sum(len(doc.spans) for doc in docs) > 1000
    assert flagged == []
