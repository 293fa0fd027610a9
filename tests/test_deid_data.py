"""The physionet-deid corpus: the record format, offsets checked against surfaces, the patient split."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest

from medtune import datasets
from medtune.datasets import deid as deid_data
from medtune.datasets.splits import bucket
from medtune.deid.types import CORPUS_TYPES
from medtune.errors import DataFormatError

NOTES = {
    ("1", "1"): "O: 58 YEAR OLD ADMITTED FROM CALVERT HOSPITAL 7/22; SEEN BY DR HEALEY.\n",
    ("1", "2"): "BUN NOW 50; NO PHI IN THIS NOTE.\n\n",
    ("2", "1"): "pt seen by dr smith at gh. daughter mary called 555-1234.\n",
}
# (patient, note, start, end, type, surface) -- offsets into the texts above
PHI = [
    ("1", "1", 29, 36, "Location", "CALVERT"),
    ("1", "1", 46, 50, "Date", "7/22"),
    ("1", "1", 63, 69, "HCPName", "HEALEY"),
    ("2", "1", 14, 19, "HCPName", "smith"),
    ("2", "1", 23, 25, "Location", "gh"),
    ("2", "1", 36, 40, "RelativeProxyName", "mary"),
    ("2", "1", 48, 56, "Phone", "555-1234"),
]


def write_corpus(folder: Path, notes: dict, phi: list, *, phrase_lines: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    records = "".join(f"START_OF_RECORD={p}||||{n}||||\n{text}||||END_OF_RECORD\n\n" for (p, n), text in notes.items())
    (folder / "id.text").write_text(records, encoding="utf-8")
    lines = phrase_lines if phrase_lines is not None else [" ".join(map(str, row)) for row in phi]
    (folder / "id-phi.phrase").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_synthetic_offsets_are_placed_as_written(tmp_path):
    for p, n, s, e, _, surface in PHI:  # the fixture itself is right
        assert NOTES[(p, n)][s:e] == surface
    folder = write_corpus(tmp_path, NOTES, PHI)
    stats: dict = {}
    docs = deid_data.read_deid_corpus(folder / "id.text", folder / "id-phi.phrase", stats=stats)
    assert [d.id for d in docs] == ["1-1", "1-2", "2-1"]
    assert docs[0].text == NOTES[("1", "1")]  # the text between the START line and END, white space included
    assert docs[1].spans == [] and docs[1].metadata == {"patient": "1", "note": "2"}
    got = [(d.metadata["patient"], s.start, s.end, s.label, s.text) for d in docs for s in d.spans]
    assert got == [(p, s, e, t, surface) for p, _, s, e, t, surface in PHI]
    assert stats["records"] == 3 and stats["patients"] == 2 and stats["phi_spans"] == 7
    assert stats["offset_mismatches"] == 0


def test_mismatched_offsets_are_counted_and_resolved_never_silently(tmp_path, caplog):
    phi = [list(row) for row in PHI]
    phi[0][2:4] = [31, 38]   # shifted by two: the surface CALVERT is found nearby -> repaired
    phi[3][5] = "jones"      # a surface not in the note: the file's offsets are kept
    phi[6][2:4] = [480, 488]  # past the end of the note, and the surface is elsewhere -> repaired
    rows = [" ".join(map(str, r)) for r in phi] + ["2 1 900 905 HCPName zzzzz"]  # out of range, not found
    folder = write_corpus(tmp_path, NOTES, [], phrase_lines=rows)
    stats: dict = {}
    with caplog.at_level(logging.WARNING, logger="medtune.datasets"):
        docs = deid_data.read_deid_corpus(folder / "id.text", folder / "id-phi.phrase", stats=stats)
    assert stats["offset_mismatches"] == 4
    assert stats["offsets_repaired"] == 2 and stats["surface_mismatch_kept"] == 1
    assert stats["dropped_out_of_range"] == 1
    first = docs[0].spans[0]
    assert (first.start, first.end) == (29, 36)
    phone = next(s for s in docs[2].spans if s.label == "Phone")
    assert (phone.start, phone.end) == (48, 56)
    kept = next(s for s in docs[2].spans if s.label == "HCPName")
    assert (kept.start, kept.end) == (14, 19)
    assert sum(len(d.spans) for d in docs) == 7
    assert "offset_mismatches: 4" in caplog.text
    for word in ("CALVERT", "jones", "zzzzz", "555"):  # counts only, no note text
        assert word not in caplog.text


def test_malformed_files_name_the_line_not_the_text(tmp_path):
    folder = write_corpus(tmp_path / "a", NOTES, [], phrase_lines=["1 1 29 x Location CALVERT"])
    with pytest.raises(DataFormatError, match=r"id-phi\.phrase:1, field 'start/end'") as err:
        deid_data.read_deid_corpus(folder / "id.text", folder / "id-phi.phrase")
    assert "CALVERT" not in str(err.value)
    folder = write_corpus(tmp_path / "b", NOTES, [], phrase_lines=["1 1 29 36 Planet CALVERT"])
    with pytest.raises(DataFormatError, match="unknown PHI type"):
        deid_data.read_deid_corpus(folder / "id.text", folder / "id-phi.phrase", labels=tuple(CORPUS_TYPES))
    folder = tmp_path / "c"
    write_corpus(folder, NOTES, PHI)
    (folder / "id.text").write_text("START_OF_RECORD=1||||1||||\nSECRET TEXT\nSTART_OF_RECORD=1||||2||||\nx\n"
                                    "||||END_OF_RECORD\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"id\.text:1, .*END_OF_RECORD") as err:
        deid_data.read_deid_corpus(folder / "id.text", folder / "id-phi.phrase")
    assert "SECRET" not in str(err.value)


def _patients(n: int) -> dict:
    return {(str(p), str(k)): f"NOTE {k} OF PATIENT.\n" for p in range(1, n + 1) for k in range(1, 4)}


def test_split_is_by_patient_deterministic_and_disjoint(tmp_path, monkeypatch):
    notes = _patients(60)
    root = tmp_path / "data"
    write_corpus(root / "physionet_deid", notes, [])
    spec = datasets.get_spec("physionet-deid")
    datasets.clear_cache()
    by_split = {s: deid_data.load_physionet_deid(spec, root, s)[0] for s in spec.splits}
    patients = {s: {d.metadata["patient"] for d in docs} for s, docs in by_split.items()}
    assert sum(len(docs) for docs in by_split.values()) == len(notes)  # every note in exactly one split
    assert not (patients["train"] & patients["dev"] or patients["train"] & patients["test"]
                or patients["dev"] & patients["test"])
    for split, who in patients.items():
        for patient in who:
            b = int(hashlib.sha256(patient.encode("utf-8")).hexdigest(), 16) % 100
            assert b == bucket(patient)
            assert split == ("train" if b < 65 else "dev" if b < 80 else "test")
    assert all(len(p) > 0 for p in patients.values())
    datasets.clear_cache()


def test_spec_labels_are_the_corpus_types_and_the_card_warning_is_data():
    spec = datasets.get_spec("physionet-deid")
    assert set(spec.labels) == set(CORPUS_TYPES) and spec.task == "ner"
    assert "patient" in spec.split_note and "sha256" in spec.split_note
    assert spec.intended_use and "validate" in spec.intended_use.lower()
    assert spec.to_dict()["intended_use"] == spec.intended_use
    assert not spec.downloadable


# ------------------------------------------------------------------------------ the real corpus
def _real_root() -> Path:
    value = os.environ.get("MEDTUNE_DATA_DIR")
    root = Path(value) if value else None
    if root is None or not (root / "physionet_deid" / "id.text").is_file():
        pytest.skip("MEDTUNE_DATA_DIR lacks physionet_deid/")
    return root


@pytest.mark.data
def test_real_corpus_offsets_and_split():
    root = _real_root()
    spec = datasets.get_spec("physionet-deid")
    for file in spec.files:  # the registry's checksums are the shared copy's
        data = (root / spec.folder / file.path).read_bytes()
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (file.sha256, file.size)
    info = datasets.info("physionet-deid", data_dir=root)
    assert info["notes"]["records"] == 1843 and info["notes"]["patients"] == 123
    assert info["notes"]["phi_spans"] == 1301 and info["notes"]["offset_mismatches"] == 0
    assert info["notes"]["overlapping_spans"] == 1
    splits = info["splits"]
    assert [splits[s]["documents"] for s in ("train", "dev", "test")] == [1342, 229, 272]
    assert [splits[s]["patients"] for s in ("train", "dev", "test")] == [87, 16, 20]
    assert [splits[s]["mentions_total"] for s in ("train", "dev", "test")] == [950, 159, 192]
    seen: dict[str, str] = {}
    for split in spec.splits:
        for doc in datasets.load("physionet-deid", split, data_dir=root):
            assert seen.setdefault(doc.metadata["patient"], split) == split
            assert doc.id == f"{doc.metadata['patient']}-{doc.metadata['note']}"
            for span in doc.spans:
                assert doc.text[span.start:span.end] == span.text and span.label in CORPUS_TYPES
