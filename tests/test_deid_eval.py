"""De-identification metrics on hand-made cases: binary vs typed, lenient vs strict, per type."""

from __future__ import annotations

import pytest

from medtune.deid.evaluate import binary_token_recall, deid_metrics, target_report, token_counts, tokens
from medtune.document import Document, Span
from medtune.errors import ConfigError

TEXT = "SEEN BY DR HEALEY AT CALVERT HOSPITAL ON 7/22/2019. K 3.9"
#       0    5  8  11     18 21      29       38 41


def gold_doc() -> Document:
    doc = Document(id="n1", text=TEXT)
    doc.add_span(11, 17, "HCPName")       # HEALEY: 1 token
    doc.add_span(21, 37, "Location")      # CALVERT HOSPITAL: 2 tokens
    doc.add_span(41, 50, "Date")          # 7/22/2019: 3 tokens
    return doc


def span(start: int, end: int, label: str) -> Span:
    return Span(start=start, end=end, label=label)


def test_tokens_are_letter_and_digit_runs():
    assert tokens("7/22/2019, O'BRIEN_x") == [(0, 1), (2, 4), (5, 9), (11, 12), (13, 18), (19, 20)]
    assert len(tokens(TEXT)) == 14


def test_perfect_prediction():
    gold = gold_doc()
    result = deid_metrics([gold], [[span(s.start, s.end, s.label) for s in gold.spans]])
    assert result["recall"] == result["precision"] == result["f1"] == 1.0
    assert result["tokens"] == {"phi": 6, "predicted": 6, "tp": 6, "fp": 0, "fn": 0, "all": 14}
    assert result["entities"]["strict"]["f1"] == result["entities"]["lenient"]["f1"] == 1.0


def test_binary_tokens_ignore_the_type_but_entities_do_not():
    gold = gold_doc()
    wrong_types = [span(11, 17, "DATE"), span(21, 37, "NAME"), span(41, 50, "LOCATION")]
    result = deid_metrics([gold], [wrong_types])
    assert result["recall"] == 1.0 and result["precision"] == 1.0
    assert result["entities"]["strict"]["f1"] == 0.0 and result["entities"]["lenient"]["f1"] == 0.0
    # categories, not labels: a rule's NAME is a gold HCPName, DATE a gold Date
    right_categories = [span(11, 17, "NAME"), span(21, 37, "LOCATION"), span(41, 50, "DATE")]
    assert deid_metrics([gold], [right_categories])["entities"]["strict"]["f1"] == 1.0


def test_lenient_counts_overlaps_strict_needs_the_offsets():
    gold = gold_doc()
    partial = [span(21, 28, "Location"), span(41, 45, "Date")]  # CALVERT; 7/22
    result = deid_metrics([gold], [partial])
    assert result["tokens"]["tp"] == 3 and result["tokens"]["fn"] == 3
    assert result["recall"] == pytest.approx(0.5) and result["precision"] == 1.0
    strict, lenient = result["entities"]["strict"], result["entities"]["lenient"]
    assert strict["precision"] == 0.0 and strict["recall"] == 0.0
    assert lenient["precision"] == 1.0 and lenient["recall"] == pytest.approx(2 / 3)
    assert result["per_type"] == {
        "Date": {"tokens": 3, "found": 2, "recall": pytest.approx(2 / 3)},
        "HCPName": {"tokens": 1, "found": 0, "recall": 0.0},
        "Location": {"tokens": 2, "found": 1, "recall": 0.5},
    }


def test_false_positive_tokens_lower_precision_only():
    gold = gold_doc()
    spans = [span(s.start, s.end, s.label) for s in gold.spans] + [span(52, 57, "Phone")]  # "K 3.9"
    result = deid_metrics([gold], [spans])
    assert result["recall"] == 1.0
    assert result["tokens"]["fp"] == 3  # K, 3, 9
    assert result["precision"] == pytest.approx(6 / 9)
    assert token_counts(gold, spans) == (6, 3, 0)
    assert binary_token_recall([gold], [spans]) == (1.0, pytest.approx(6 / 9))


def test_a_span_inside_a_word_finds_the_whole_token():
    gold = gold_doc()
    result = deid_metrics([gold], [[span(12, 14, "NAME")]])  # "EA" of HEALEY
    assert result["tokens"]["tp"] == 1 and result["per_type"]["HCPName"]["recall"] == 1.0


def test_documents_add_up_and_counts_per_document():
    gold = [gold_doc(), Document(id="n2", text="NO PHI HERE")]
    result = deid_metrics(gold, [[span(11, 17, "NAME")], [span(0, 2, "NAME")]])
    assert result["_counts"].tolist() == [[1, 0, 5], [0, 1, 0]]
    assert result["documents"] == 2 and result["tokens"]["all"] == 17


def test_targets_judge_only_types_with_enough_tokens():
    gold = gold_doc()
    result = deid_metrics([gold], [[span(21, 50, "LOCATION")]])  # misses HEALEY only
    report = target_report(result, recall=0.8, precision=0.5, min_type_tokens=2)
    assert report["types"] and report["met"]  # HCPName has 1 token: not judged
    report = target_report(result, recall=0.8, precision=0.5, min_type_tokens=1)
    assert report["types_below"] == ["HCPName"] and not report["met"]
    assert not target_report(result)["recall"]  # 5/6 < 0.98


def test_no_text_in_the_result_and_lengths_must_match():
    gold = gold_doc()
    result = deid_metrics([gold], [[span(11, 17, "NAME")]])
    assert "HEALEY" not in repr(result) and "CALVERT" not in repr(result)
    with pytest.raises(ConfigError, match="1 gold documents but 2"):
        deid_metrics([gold], [[], []])


def test_a_deid_pipeline_is_scored_on_what_its_detector_finds(tmp_path):
    from medtune.deid.detect import PhiDetector
    from medtune.evaluation.pipeline import evaluate_pipeline
    from medtune.io.jsonl import write_jsonl

    gold = [gold_doc(), Document(id="n2", text="CALLED DAUGHTER MARY AT 410-555-1234 ON 3/4/2021.")]
    gold[1].add_span(16, 20, "RelativeProxyName")
    gold[1].add_span(24, 36, "Phone")
    gold[1].add_span(40, 48, "Date")
    write_jsonl(gold, tmp_path / "gold.jsonl")
    (tmp_path / "deid.yaml").write_text("name: deid-rules\ncomponents:\n  - kind: deid\n    rules: true\n",
                                        encoding="utf-8")
    result = evaluate_pipeline(tmp_path / "deid.yaml", str(tmp_path / "gold.jsonl"), output=tmp_path / "m.json",
                               ci=True, resamples=50)
    expected = deid_metrics(gold, PhiDetector(rules=True).detect(gold))
    assert list(result)[:2] == ["recall", "precision"]
    assert (result["recall"], result["precision"]) == (expected["recall"], expected["precision"])
    assert result["per_type"] == expected["per_type"] and result["entities"] == expected["entities"]
    assert result["detector"] == {"rules": True, "model": None, "outside_weight": None, "not_phi": True}
    assert result["task"] == "ner" and "recall" in result["ci"] and "met" in result["targets"]
    written = (tmp_path / "m.json").read_text(encoding="utf-8")
    for secret in ("HEALEY", "CALVERT", "MARY", "410-555"):  # counts and ratios only
        assert secret not in written
