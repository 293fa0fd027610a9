"""The ConText assertion engine, its lexicon loading, data loaders and metrics (fast, no corpora)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medtune.assertion import ATTRIBUTES, ContextEngine, split_sentences
from medtune.datasets.assertion import find_concept, load_bionlplab, load_negex_test, loader_notes
from medtune.assertion.metrics import assertion_report
from medtune.assertion.rules import ContextRule, load_lexicon, shipped_lexicon_path
from medtune.document import Document
from medtune.errors import ConfigError, DataFormatError, DatasetNotFoundError


@pytest.fixture(scope="module")
def engine() -> ContextEngine:
    return ContextEngine.from_yaml()


def flags(engine: ContextEngine, text: str, concept: str, occurrence: int = 0) -> set[str]:
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(concept, start + 1)
    values = engine.assert_span(text, start, start + len(concept))
    assert set(values) == set(ATTRIBUTES)
    return {k for k, v in values.items() if v}


# --------------------------------------------------------------------------- scopes
@pytest.mark.parametrize("text, concept, expected", [
    ("No fever but has cough.", "fever", {"negated"}),
    ("No fever but has cough.", "cough", set()),
    ("He was ruled out for MI.", "MI", {"negated"}),
    ("Patient was ruled out for MI.", "MI", {"negated"}),
    ("Patient denies chest pain.", "chest pain", {"negated"}),
    ("Denies fever, chills or night sweats.", "night sweats", {"negated"}),
    ("Extremities reveal no peripheral cyanosis or edema.", "edema", {"negated"}),
    ("Without evidence of pulmonary embolism.", "pulmonary embolism", {"negated"}),
    ("Pneumonia was ruled out.", "Pneumonia", {"negated"}),
    ("Pneumonia is unlikely.", "Pneumonia", {"negated"}),
    ("Blood cultures were negative.", "Blood cultures", {"negated"}),
    ("Abdomen soft, non-tender.", "tender", {"negated"}),
    ("Rule out pneumonia.", "pneumonia", {"uncertain"}),
    ("Cannot rule out pneumonia.", "pneumonia", {"uncertain"}),
    ("Pulmonary embolism cannot be excluded.", "Pulmonary embolism", {"uncertain"}),
    ("Findings suggestive of pneumonia.", "pneumonia", {"uncertain"}),
    ("Atelectasis versus pneumonia.", "Atelectasis", {"uncertain"}),
    ("Possible pneumonia, no effusion.", "effusion", {"negated"}),
    ("Possible pneumonia, no effusion.", "pneumonia", {"uncertain"}),
    ("Allergies: No known drug allergies.", "drug allergies", {"negated"}),
    ("Edema: no.", "Edema", {"negated"}),
    ("Chest x-ray: no infiltrate.", "Chest x-ray", set()),
    ("No further bleeding.", "bleeding", {"negated"}),
])
def test_existence_scopes(engine, text, concept, expected):
    assert flags(engine, text, concept) == expected


@pytest.mark.parametrize("text, concept", [
    ("No increase in pain.", "pain"),
    ("There is no significant change in the effusion.", "effusion"),
    ("Not only fever but also cough.", "fever"),
    ("Not only fever but also cough.", "cough"),
    ("Gram negative rods in the sputum.", "rods"),
    ("CT chest without contrast showed a nodule.", "nodule"),
    ("Patient has non-small cell lung cancer.", "lung cancer"),
])
def test_pseudo_triggers_do_not_negate(engine, text, concept):
    assert "negated" not in flags(engine, text, concept)


def test_negated_by_a_trigger_inside_a_uncertainty_cue_is_kept(engine):
    # an uncertainty cue inside a negation's scope does not end it
    assert "negated" in flags(engine, "No findings to suggest pneumonia.", "pneumonia")


@pytest.mark.parametrize("text, concept", [
    ("No fever; however, the patient has a cough.", "cough"),
    ("No pain aside from a mild headache.", "headache"),
    ("No fever except for a low grade temperature.", "temperature"),
    ("No clear source of infection was found.", "infection"),
    ("Denies fever, reports cough.", "cough"),
])
def test_terminators_end_the_scope(engine, text, concept):
    assert "negated" not in flags(engine, text, concept)


def test_which_terminates_all_families(engine):
    text = "Mother had a stroke which led to his own hypertension screening."
    assert flags(engine, text, "hypertension") == set()


def test_second_sentence_is_not_touched_by_a_trigger_in_the_first(engine):
    text = "No fever. Cough present. Patient denies nausea."
    assert flags(engine, text, "fever") == {"negated"}
    assert flags(engine, text, "Cough") == set()
    assert flags(engine, text, "nausea") == {"negated"}


def test_sentences_from_metadata_are_used(engine):
    text = "no fever cough present"
    doc = Document(id="d", text=text)
    span = doc.add_span(text.index("cough"), text.index("cough") + 5, "Problem")
    engine(doc)
    assert span.attributes["negated"] is True  # one sentence: the scope runs on
    doc.metadata["sentences"] = [[0, 8], [9, len(text)]]
    engine(doc)
    assert span.attributes["negated"] is False


@pytest.mark.parametrize("text, concept, expected", [
    ("Mother had breast cancer.", "breast cancer", "family"),
    ("Family history of diabetes mellitus.", "diabetes mellitus", "family"),
    ("History of MI.", "MI", "historical"),
    ("Past medical history significant for asthma.", "asthma", "historical"),
    ("Status post appendectomy.", "appendectomy", "historical"),
    ("Return if fever develops.", "fever", "hypothetical"),
    ("Call the clinic should he have any chest pain.", "chest pain", "hypothetical"),
    ("Tylenol as needed for pain.", "pain", "hypothetical"),
    ("Chest pain on exertion.", "Chest pain", "conditional"),
    ("She gets shortness of breath when climbing stairs.", "shortness of breath", "conditional"),
])
def test_other_categories(engine, text, concept, expected):
    assert expected in flags(engine, text, concept)


@pytest.mark.parametrize("text, concept", [
    ("History and physical: patient with pneumonia.", "pneumonia"),
    ("History of present illness: cough for two days.", "cough"),
    ("A 65 year old man with chest pain.", "chest pain"),
])
def test_historical_pseudo_triggers(engine, text, concept):
    assert "historical" not in flags(engine, text, concept)


def test_document_call_sets_all_attributes_cues_and_respects_labels(engine):
    text = "Patient denies chest pain. Mother had diabetes."
    doc = Document(id="d1", text=text)
    pain = doc.add_span(text.index("chest pain"), text.index("chest pain") + 10, "Problem")
    dm = doc.add_span(text.index("diabetes"), text.index("diabetes") + 8, "Problem")
    drug = doc.add_span(0, 7, "Person")
    out = engine(doc, labels=["Problem"])
    assert out is doc
    expected = {**dict.fromkeys(ATTRIBUTES, False), "negated": True}
    assert {k: pain.attributes[k] for k in ATTRIBUTES} == expected
    assert dm.attributes["family"] is True and dm.attributes["negated"] is False
    start, end = pain.attributes["assertion_cues"][0]
    assert text[start:end] == "denies"
    assert drug.attributes == {}  # filtered out by label
    engine(doc)
    assert set(ATTRIBUTES) <= set(drug.attributes) and drug.attributes["assertion_cues"] == []
    json.dumps(doc.to_dict())  # attributes stay JSON-serialisable


def test_trigger_inside_the_concept_is_ignored(engine):
    assert flags(engine, "Patient has negative T waves.", "negative T waves") == set()


def test_split_sentences_keeps_offsets():
    text = "Dr. Smith saw the pt. today. No fever!  Cough e.g. at night?\n\nPLAN: rest.\n1. Fluids"
    sentences = split_sentences(text)
    pieces = [text[a:b] for a, b in sentences]
    assert pieces[0] == "Dr. Smith saw the pt. today."
    assert "No fever!" in pieces and "PLAN: rest." in pieces and pieces[-1] == "1. Fluids"
    assert all(text[a:b].strip() == text[a:b] for a, b in sentences)
    assert split_sentences("") == []


def test_assert_span_checks_offsets(engine):
    with pytest.raises(ValueError):
        engine.assert_span("short", 2, 10)


# --------------------------------------------------------------------------- lexicons
def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_lexicon_loads_and_is_credited():
    path = shipped_lexicon_path()
    rules, defaults = load_lexicon(path)
    assert len(rules) > 300 and "max_scope" in defaults
    head = path.read_text(encoding="utf-8")[:2000]
    assert "Apache License 2.0" in head and "MIT License" in head
    assert {r.category for r in rules} >= {"NEGATED_EXISTENCE", "POSSIBLE_EXISTENCE", "HISTORICAL",
                                          "HYPOTHETICAL", "FAMILY", "CONDITIONAL", "PSEUDO", "TERMINATE"}


def test_user_lexicon_extends_and_overrides(tmp_path):
    user = write(tmp_path, "user.yaml", """
rules:
  - {phrase: "nkda", category: NEGATED_EXISTENCE, direction: forward}
  - {phrase: "lab confirmed", category: NEGATED_EXISTENCE, direction: backward, max_scope: 2}
  - {phrase: "denies", category: PSEUDO}
  - {phrase: "\\\\bmaybe\\\\b", category: POSSIBLE_EXISTENCE, regex: true}
""")
    engine = ContextEngine.from_yaml([user])
    assert flags(engine, "NKDA penicillin.", "penicillin") == {"negated"}
    assert flags(engine, "Patient denies chest pain.", "chest pain") == set()  # shipped 'denies' replaced
    assert flags(engine, "No fever.", "fever") == {"negated"}  # the rest of the shipped lexicon is kept
    assert flags(engine, "Flu lab confirmed.", "Flu") == {"negated"}
    assert flags(engine, "Pneumonia, maybe.", "Pneumonia") == set()  # forward only
    assert flags(engine, "Maybe pneumonia.", "pneumonia") == {"uncertain"}
    alone = ContextEngine.from_yaml(user, extend=False)
    assert flags(alone, "No fever.", "fever") == set()
    assert len(alone.rules) == 4


def test_user_lexicon_defaults_and_overrides(tmp_path):
    user = write(tmp_path, "u.yaml", "defaults: {max_scope: 2}\nrules: []\n")
    assert ContextEngine.from_yaml([user]).max_scope == 2
    narrow = ContextEngine.from_yaml([user])
    assert flags(narrow, "No fever, chills, headache or cough.", "cough") == set()
    assert flags(narrow, "No fever, chills, headache or cough.", "fever") == {"negated"}
    assert ContextEngine.from_yaml([user], max_scope=None).max_scope is None
    with pytest.raises(TypeError):
        ContextEngine.from_yaml(bogus=1)
    with pytest.raises(ConfigError, match="extend=False"):
        ContextEngine.from_yaml(None, extend=False)


@pytest.mark.parametrize("body, fragment", [
    ("rules:\n  - {phrase: 'no', category: NEGATED_EXISTENCE}\n"
     "  - {phrase: x, category: NEGATED_EXISTENCE, scope: 3}\n",
     "rule 1: unknown key(s) ['scope']"),
    ("rules:\n  - {phrase: no, category: NEGATED_EXISTENCE}\n", "rule 0: 'phrase' was read as true/false"),
    ("rules:\n  - {phrase: x, category: NEGATION}\n", "rule 0: missing or unknown 'category'"),
    ("rules:\n  - {phrase: x, category: FAMILY, direction: sideways}\n", "rule 0: unknown 'direction'"),
    ("rules:\n  - {category: FAMILY}\n", "rule 0: missing or empty 'phrase'"),
    ("rules:\n  - {phrase: '', category: FAMILY}\n", "rule 0: missing or empty 'phrase'"),
    ("rules:\n  - {phrase: x, category: PSEUDO, direction: forward}\n", "goes with direction 'pseudo'"),
    ("rules:\n  - {phrase: x, category: FAMILY, max_scope: 0}\n", "'max_scope' must be a positive"),
    ("rules:\n  - {phrase: '(', category: FAMILY, regex: true}\n", "not a valid regular expression"),
    ("rules:\n  - {phrase: x, category: TERMINATE, terminates: [NOPE]}\n", "'terminates' must list"),
    ("rule:\n  - {phrase: x, category: FAMILY}\n", "unknown top-level key(s) ['rule']"),
    ("defaults: {window: 3}\n", "unknown key(s) ['window'] in 'defaults'"),
    ("rules: [\n", "not valid YAML"),
])
def test_bad_lexicons_name_file_rule_and_fix(tmp_path, body, fragment):
    path = write(tmp_path, "bad.yaml", body)
    with pytest.raises(ConfigError) as info:
        ContextEngine.from_yaml([path])
    message = str(info.value)
    assert fragment in message
    assert str(path) in message and "Fix:" in message


def test_missing_lexicon_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        ContextEngine.from_yaml([tmp_path / "nope.yaml"])


def test_rules_can_be_built_in_code():
    engine = ContextEngine([ContextRule("nope", "NEGATED_EXISTENCE", "forward")])
    assert flags(engine, "Nope fever.", "fever") == {"negated"}


# --------------------------------------------------------------------------- loaders
NEGEX_HEADER = ("line number\tCondition\tsentence\tnegation_status (negated, affirmed, possible)\t"
                "temporality (historical, recent, hypothetical)\texperiencer (patient, other)\n")


def negex_dir(tmp_path: Path, rows: list[str]) -> Path:
    folder = tmp_path / "negex_annotations"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rsAnnotations-1-120-random.txt").write_text(NEGEX_HEADER + "".join(r + "\n" for r in rows),
                                                          encoding="utf-8")
    return tmp_path


def test_load_negex_test(tmp_path):
    root = negex_dir(tmp_path, [
        "1\tedema\tExtremities reveal no peripheral cyanosis or EDEMA.\tNegated\tRecent\tPatient",
        "2\tchest  pain\tHistory of chest\tpain.\tAffirmed\tHistorical\tPatient",  # 7 columns
    ])
    with pytest.raises(DataFormatError) as info:
        load_negex_test(root)
    assert info.value.line == 3 and info.value.field == "columns" and "rsAnnotations" in str(info.value)

    root = negex_dir(tmp_path, [
        "1\tedema\tExtremities reveal no peripheral cyanosis or EDEMA.\tNegated\tRecent\tPatient",
        "2\tchest pain\tHistory of CHEST   PAIN.\tAffirmed\tHistorical\tPatient",
        "3\twheezing\tReturn if wheezing.\tAffirmed\tNot particular\tPatient",
        "4\tbreast cancer\tMother had breast ca.\tAffirmed\tHistorical\tFamily member",
    ])
    stats: dict = {}
    docs = load_negex_test(root, stats=stats)
    assert len(docs) == 4
    for doc in docs:
        doc.validate()
        assert len(doc.spans) == 1 and doc.spans[0].label == "Concept"
    assert docs[0].spans[0].text == "EDEMA"
    assert docs[1].spans[0].text == "CHEST   PAIN"
    assert docs[0].spans[0].attributes["gold"] == {"negated": True, "historical": False,
                                                   "hypothetical": False, "family": False}
    assert docs[2].spans[0].attributes["gold"]["hypothetical"] is True
    assert docs[3].spans[0].attributes["gold"]["family"] is True
    # concept absent: the row is kept, the span covers the sentence, the count is reported
    assert (docs[3].spans[0].start, docs[3].spans[0].end) == (0, len(docs[3].text))
    assert stats == {"rows": 4, "concept_not_found": 1}
    assert loader_notes(docs) == {"concept_not_found": 1}


def test_load_negex_test_bad_value_and_missing_file(tmp_path):
    root = negex_dir(tmp_path, ["1\tedema\tNo edema.\tNegative\tRecent\tPatient"])
    with pytest.raises(DataFormatError) as info:
        load_negex_test(root)
    assert info.value.field == "negation" and info.value.line == 2
    assert "No edema" not in str(info.value)  # never quote note text
    with pytest.raises(DatasetNotFoundError, match="rsAnnotations-1-120-random.txt"):
        load_negex_test(tmp_path / "elsewhere")


def test_load_negex_test_uses_the_env_data_dir(tmp_path, monkeypatch):
    root = negex_dir(tmp_path, ["1\tedema\tNo edema.\tNegated\tRecent\tPatient"])
    monkeypatch.setenv("MEDTUNE_DATA_DIR", str(root))
    assert len(load_negex_test()) == 1


def bionlplab_dir(tmp_path: Path, source: str, text: str) -> Path:
    rel = {"bioscope": "bioscope/bioscope.csv", "chia": "chia/chia_without_scope_balanced.csv",
           "negex": "negex/negex.csv"}[source]
    path = tmp_path / "assertion_bionlplab" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return tmp_path


BIOSCOPE = (",sentence_id,sentence,xcope,xcope_start,xcope_end,cue,cue_start,cue_end,"
            "concept,concept_start,concept_end,label\n"
            "0,S1.1,Normal.,,,,,,,,,,P\n"
            "1,S1.2,No fever.,No fever,0,8,No,0,2,fever,3,8,N\n"
            '2,S1.3,"Possible pneumonia, or not.",,,,,,,pneumonia,9,18,U\n'
            "3,S1.4,Cough and FEVER.,,,,,,,fever,0,5,P\n")


def test_load_bionlplab(tmp_path):
    root = bionlplab_dir(tmp_path, "bioscope", BIOSCOPE)
    stats: dict = {}
    docs = load_bionlplab(root, "bioscope", stats=stats)
    assert [d.spans[0].text for d in docs] == ["fever", "pneumonia", "FEVER"]
    assert [d.spans[0].attributes["gold"] for d in docs] == [
        {"negated": True, "uncertain": False}, {"negated": False, "uncertain": True},
        {"negated": False, "uncertain": False}]
    assert stats == {"rows": 4, "no_concept_skipped": 1, "offsets_repaired": 1}
    kept = load_bionlplab(root, "bioscope", missing_concept="sentence")
    assert len(kept) == 4 and kept[0].spans[0].end == len("Normal.")
    for doc in kept:
        doc.validate()


def test_load_bionlplab_chia_fragments(tmp_path):
    text = ("sentence_id,sentence,concept,concept_start,concept_end,concept_start_end_list,"
            "cue,cue_start,cue_end,label\n"
            'a,"Not currently engaged in > 60 min/wk of exercise",engaged in exercise,,,'
            '"[(14, 24), (14, 22)]",Not,0,3,N\n'
            'b,There should be no plasma HIV-1,plasma HIV-1 RNA,19,35,,no,16,18,N\n')
    docs = load_bionlplab(bionlplab_dir(tmp_path, "chia", text), "chia")
    first = docs[0].spans[0]
    assert [docs[0].text[a:b] for a, b in first.fragments] == ["engaged in", "exercise"]
    assert docs[1].spans[0].text == "plasma HIV-1"
    assert loader_notes(docs) == {"fragments_aligned": 1, "offsets_clipped": 1}
    for doc in docs:
        doc.validate()


@pytest.mark.parametrize("row, field", [
    ("4,S1.5,No rash.,,,,,,,rash,3,7,X\n", "label"),
    ("4,S1.5,No rash.,,,,,,,rash,three,7,N\n", "concept_start"),
    ("4,S1.5,No rash.,,,,,,,itch,3,7,N\n", "concept_start"),
    ("4,S1.5,No rash.,,,,,,rash,3,7,N\n", "columns"),
])
def test_load_bionlplab_malformed_rows(tmp_path, row, field):
    root = bionlplab_dir(tmp_path, "bioscope", BIOSCOPE + row)
    with pytest.raises(DataFormatError) as info:
        load_bionlplab(root, "bioscope")
    assert info.value.line == 6 and info.value.field == field
    assert "bioscope.csv" in str(info.value) and "rash" not in str(info.value).replace("rash.", "")


def test_load_bionlplab_missing_file_and_bad_source(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="chia_without_scope_balanced.csv"):
        load_bionlplab(tmp_path, "chia")
    with pytest.raises(ValueError):
        load_bionlplab(tmp_path, "i2b2")


def test_find_concept():
    assert find_concept("History of CHEST\n PAIN.", "chest pain") == (11, 22)
    assert find_concept("s/p CABG x3", "s / p CABG") == (0, 8)
    assert find_concept("nothing here", "fever") is None


# --------------------------------------------------------------------------- metrics
def gold_doc(i: int, gold: dict, pred: dict) -> Document:
    doc = Document(id=str(i), text="x y")
    span = doc.add_span(0, 1, "Concept")
    span.attributes.update(dict.fromkeys(ATTRIBUTES, False))
    span.attributes.update(pred)
    span.attributes["gold"] = gold
    return doc


def test_assertion_report_hand_computed():
    g = {"negated": False, "historical": False, "hypothetical": False, "family": False}
    docs = [
        gold_doc(0, {**g, "negated": True}, {"negated": True}),                      # TP
        gold_doc(1, {**g, "negated": True}, {"negated": True, "historical": True}),  # TP, time wrong
        gold_doc(2, {**g, "negated": True}, {}),                                     # FN
        gold_doc(3, g, {"negated": True}),                                           # FP
        gold_doc(4, {**g, "historical": True}, {"historical": True}),                # TN, time right
        gold_doc(5, {**g, "hypothetical": True}, {"hypothetical": True, "historical": True}),
        gold_doc(6, {**g, "family": True}, {}),                                      # experiencer wrong
        gold_doc(7, g, {}),
    ]
    docs.append(Document(id="nogold", text="z", spans=[]))
    report = assertion_report(docs)
    neg = report["negated"]
    assert (neg["tp"], neg["fp"], neg["fn"], neg["tn"]) == (2, 1, 1, 4)
    assert neg["precision"] == pytest.approx(2 / 3) and neg["recall"] == pytest.approx(2 / 3)
    assert neg["f1"] == pytest.approx(2 / 3)
    assert report["temporality"]["accuracy"] == pytest.approx(7 / 8)
    assert report["temporality"]["confusion"]["matrix"] == [[5, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert report["experiencer"]["accuracy"] == pytest.approx(7 / 8)
    assert report["experiencer"]["confusion"] == {"labels": ["patient", "other"], "matrix": [[7, 0], [1, 0]]}
    assert "uncertain" not in report and report["n_spans"] == 8


def test_assertion_report_three_way():
    docs = [
        gold_doc(0, {"negated": False, "uncertain": True}, {"uncertain": True}),
        gold_doc(1, {"negated": False, "uncertain": True}, {"negated": True, "uncertain": True}),
        gold_doc(2, {"negated": True, "uncertain": False}, {"negated": True}),
        gold_doc(3, {"negated": False, "uncertain": False}, {"uncertain": True}),
    ]
    report = assertion_report(docs)
    assert report["uncertain"]["tp"] == 2 and report["uncertain"]["fp"] == 1
    assert report["negated"]["precision"] == pytest.approx(0.5) and report["negated"]["recall"] == 1.0
    three = report["assertion"]
    assert three["accuracy"] == pytest.approx(0.5)
    assert three["confusion"] == {"labels": ["present", "negated", "uncertain"],
                                  "matrix": [[0, 0, 1], [0, 1, 0], [0, 1, 1]]}


# --------------------------------------------------------------------------- public corpora
@pytest.fixture(scope="module")
def corpora_dir() -> Path:
    """``$MEDTUNE_DATA_DIR``, else ``../shared/data`` beside the checkout; skip only when neither
    holds the two assertion corpora."""
    import os

    candidates = [os.environ.get("MEDTUNE_DATA_DIR", ""),
                  str(Path(__file__).resolve().parents[2] / "shared" / "data")]
    for value in candidates:
        root = Path(value) if value else None
        if root and (root / "negex_annotations").is_dir() and (root / "assertion_bionlplab").is_dir():
            return root
    pytest.skip("the public corpora (../shared/data) are not available")


def test_real_corpora_load(corpora_dir):
    data_dir = corpora_dir
    stats: dict = {}
    negex = load_negex_test(data_dir, stats=stats)
    assert len(negex) == 2376 and stats["rows"] == 2376
    assert sum(d.spans[0].attributes["gold"]["negated"] for d in negex) == 491
    for source, rows in (("bioscope", 7605), ("chia", 2114), ("negex", 2376)):
        stats = {}
        docs = load_bionlplab(data_dir, source, stats=stats)
        assert stats["rows"] == rows
        for doc in docs:
            doc.validate()


# --------------------------------------------------------------------------- runaway regexes, lexicon errors
PLANTED = "MRN-4471-QZX"  # stands for note text that must never reach an error message


@pytest.mark.timeout(120)
def test_catastrophic_regex_is_bounded_and_named(tmp_path):
    path = write(tmp_path, "evil.yaml", """
rules:
  - {phrase: denies, category: NEGATED_EXISTENCE}
  - {phrase: "(a+)+$", category: POSSIBLE_EXISTENCE, regex: true}
""")
    engine = ContextEngine.from_yaml([path], extend=False)
    text = f"Patient {PLANTED} denies fever " + "a" * 20000 + "b"
    doc = Document(id="note-7", text=text)
    start = text.index("fever")
    doc.add_span(start, start + 5, "Problem")
    with pytest.raises(ConfigError) as info:  # returns (after about the timeout), does not hang
        engine(doc)
    message = str(info.value)
    assert info.value.code == "E300"
    assert str(path) in message and "rule 1" in message and "catastrophically" in message and "Fix:" in message
    assert PLANTED not in message and "aaaa" not in message and "fever" not in message
    assert "(a+)+" in message  # the fix shows the usual rewrite, not the user's text
    with pytest.raises(ConfigError, match="rule 1"):
        engine.assert_span(text, start, start + 5)
    harmless = Document(id="note-8", text=f"Patient {PLANTED} denies fever.")  # same rule, short sentence
    harmless.add_span(harmless.text.index("fever"), harmless.text.index("fever") + 5, "Problem")
    assert engine(harmless).spans[0].attributes["negated"] is True


def test_regex_timeout_is_configurable_and_code_rules_are_named():
    rule = ContextRule(r"(x|xx)+y", "NEGATED_EXISTENCE", "forward", regex=True)
    engine = ContextEngine([rule], regex_timeout=0.01)
    with pytest.raises(ConfigError, match=r"built in code.*0\.01 s"):
        engine.assert_span("x" * 5000 + " fever", 5001, 5006)
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        ContextEngine([ContextRule("(", "FAMILY", "forward", regex=True, origin="mine.yaml#3")])
    try:
        ContextEngine([ContextRule("(", "FAMILY", "forward", regex=True, origin="mine.yaml#3")])
    except ConfigError as err:
        assert "mine.yaml, rule 3" in str(err)


def test_unreadable_lexicon_is_a_coded_error(tmp_path):
    folder = tmp_path / "lexicon.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="not found"):  # a directory is not a lexicon file
        ContextEngine.from_yaml([folder])
    binary = tmp_path / "latin1.yaml"
    binary.write_bytes("rules:\n  - {phrase: 'n\xe9gatif', category: NEGATED_EXISTENCE}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8") as info:
        ContextEngine.from_yaml([binary])
    assert str(binary) in str(info.value) and info.value.code == "E300"


def test_bad_metadata_sentences_are_a_coded_error(engine):
    doc = Document(id="n1", text="No fever. Cough.")
    doc.add_span(3, 8, "Problem")
    doc.metadata["sentences"] = [[0, "nine", 3]]
    with pytest.raises(ConfigError, match="metadata 'sentences'"):
        engine(doc)
    doc.metadata["sentences"] = [[10, 16], [0, 9]]  # unsorted: sorted before use
    assert engine(doc).spans[0].attributes["negated"] is True
