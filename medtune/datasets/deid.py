"""The PhysioNet deid corpus (Neamatullah et al. 2008): nursing notes with their gold PHI spans.

Files (``physionet_deid/`` under the data dir):

* ``id.text``: records ``START_OF_RECORD=<patient>||||<note>||||`` + newline, the note text, then
  ``||||END_OF_RECORD`` (the text is everything between the newline that ends the START line and
  ``||||END_OF_RECORD``, white space included).
* ``id-phi.phrase``: one PHI span per line, ``<patient> <note> <start> <end> <TYPE> <surface>``, with
  character offsets into the note text (``start`` inclusive, ``end`` exclusive).

:func:`read_deid_corpus` gives one :class:`~medtune.document.Document` per note, id
``<patient>-<note>``, ``metadata["patient"]`` / ``metadata["note"]``, and one span per PHI line
labelled with its corpus type (``HCPName``, ``Date``, ...). Every offset is checked against the
surface: a surface that differs only in white space is accepted; otherwise the nearest occurrence of
the surface in the note is taken (``offsets_repaired``); a span whose surface is nowhere in the note
keeps the file's offsets (``surface_mismatch_kept``) or, when they fall outside the note, is dropped
(``dropped_out_of_range``). Every such case is counted in ``stats`` (the load notes that
``medtune datasets info`` shows) and in one warning; messages never quote note text.

The split is by patient, never by note: a patient's bucket is ``int(sha256(patient id), 16) % 100``
(:mod:`medtune.datasets.splits`), buckets 0-64 -> train, 65-79 -> dev, 80-99 -> test.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtune.datasets.splits import assign_split
from medtune.document import Document, Span
from medtune.errors import DataFormatError
from medtune.fileutils import iter_lines, read_text

if TYPE_CHECKING:  # the registry imports this module for DEID_SPEC_FIELDS
    from medtune.datasets.registry import DatasetSpec

logger = logging.getLogger("medtune.datasets")

TEXT_FILE = "id.text"
PHRASE_FILE = "id-phi.phrase"
#: ``[(split, percent of patients)]``, cut in this order over the patient buckets.
PATIENT_SPLIT: tuple[tuple[str, int], ...] = (("train", 65), ("dev", 15), ("test", 20))

DEID_SOURCE = ("cliffordlab/DEID-2023", "d88800a")
#: ``(local path, path in the source repository, sha256, size)`` of the files of the shared copy.
DEID_FILES = (
    (TEXT_FILE, TEXT_FILE, "a6302174303ffc5f271e917de4a93a0aa99299b50ac20a09ffb5797b06fda6aa", 1620753),
    (PHRASE_FILE, PHRASE_FILE, "6a1038ef87bcdc416e5989414d733062bf59d6d4387b1705cf11bb5dc3e4265d", 36950),
)
#: The ``physionet-deid`` spec, less ``source`` and ``files`` (the registry adds them).
DEID_SPEC_FIELDS: dict[str, Any] = dict(
    name="physionet-deid",
    task="ner",
    description="PhysioNet deid nursing notes (MIMIC II; often UPPERCASE, some over 3,000 characters) whose PHI "
                "was replaced by realistic surrogates, with gold PHI spans of 10 types. One document per note, "
                "id '<patient>-<note>', metadata['patient'] and metadata['note']. The shared copy holds 1,843 "
                "notes of 123 patients (a quarter of the original patients are kept aside). Every offset is "
                "checked against its surface (counts in the notes).",
    labels=("HCPName", "Date", "Location", "RelativeProxyName", "PTName", "Phone", "DateYear", "Age", "Other",
            "PTNameInitial"),
    licence="GNU GPL 2.0 (PhysioNet deid 1.1); never try to re-identify anyone",
    citation="Neamatullah I, Douglass MM, Lehman LH, Reisner A, Villarroel M, Long WJ, Szolovits P, Moody GB, "
             "Mark RG, Clifford GD. Automated de-identification of free-text medical records. BMC Med Inform "
             "Decis Mak 2008;8:32. doi:10.1186/1472-6947-8-32",
    folder="physionet_deid",
    split_note="No official split. Split by patient, never by note (all notes of a patient in one split): "
               "bucket = int(sha256(patient id as UTF-8), 16) % 100; buckets 0-64 -> train, 65-79 -> dev, "
               "80-99 -> test (shared copy: 1,342 / 229 / 272 notes of 87 / 16 / 20 patients, 950 / 159 / 192 "
               "PHI spans; dev has no Phone span). Dev is 15 % rather than 10 % so that the decoding bias is "
               "tuned on about 160 PHI spans, not 90.",
    loader="physionet-deid",
    download_unsupported="The checksums above are those of the shared copy, which keeps 123 of the patients of "
                         "the upstream files, so medtune does not download them (the upstream ones would not "
                         "match). Copy id.text and id-phi.phrase of the shared copy; `git clone "
                         "https://github.com/cliffordlab/DEID-2023` (commit d88800a) has the upstream files, "
                         "which load too (all patients, other counts)",
    intended_use="A PHI model trained on this corpus learned from one hospital's ICU nursing notes of the 2000s "
                 "(MIMIC II, mostly UPPERCASE, PHI replaced by surrogates) and 10 PHI types. It will miss PHI "
                 "of other kinds, formats and institutions: validate its recall on your own notes, with your "
                 "own annotated sample, before any use, and use it with rules (`medtune deid`) and a human "
                 "review, never alone.",
)

_START = re.compile(r"START_OF_RECORD=([^|\n]+)\|\|\|\|([^|\n]+)\|\|\|\|[ \t]*\r?\n")
_END = "||||END_OF_RECORD"
_Result = tuple[list[Document], dict[str, Any], dict[str, Any]]


def patient_split(patient: str) -> str:
    """The split (train / dev / test) of every note of ``patient``."""
    return assign_split(patient, list(PATIENT_SPLIT))


def _records(path: Path) -> list[tuple[str, str, str, int]]:
    """(patient, note, text, line of the START line) of every record of ``id.text``."""
    raw = read_text(path)
    out: list[tuple[str, str, str, int]] = []
    pos = 0
    while True:
        match = _START.search(raw, pos)
        rest = raw[pos: match.start() if match else len(raw)]
        if rest.strip():  # text outside a record: the file is not what the format says
            line = raw.count("\n", 0, pos + len(rest) - len(rest.lstrip())) + 1
            raise DataFormatError("text outside a START_OF_RECORD ... ||||END_OF_RECORD record", path=path,
                                  line=line, field="record",
                                  fix="check that the file is the PhysioNet deid id.text (see DATA.md)")
        if match is None:
            return out
        line = raw.count("\n", 0, match.start()) + 1
        end = raw.find(_END, match.end())
        nxt = _START.search(raw, match.end())
        if end < 0 or (nxt is not None and nxt.start() < end):
            raise DataFormatError("a record has no ||||END_OF_RECORD before the next record or the end of the "
                                  "file", path=path, line=line, field="record",
                                  fix="close every record with a line ||||END_OF_RECORD")
        out.append((match.group(1).strip(), match.group(2).strip(), raw[match.end():end], line))
        pos = end + len(_END)


def _place(text: str, start: int, end: int, surface: str, counts: Counter) -> tuple[int, int] | None:
    """The offsets of one PHI span after checking them against its surface (see the module doc)."""
    inside = 0 <= start < end <= len(text)
    if inside and text[start:end] == surface:
        return start, end
    if inside and text[start:end].split() == surface.split():
        counts["surface_whitespace_differs"] += 1
        return start, end
    counts["offset_mismatches"] += 1
    found = [m.start() for m in re.finditer(re.escape(surface), text)] if surface else []
    if found:
        best = min(found, key=lambda s: (abs(s - start), s))
        counts["offsets_repaired"] += 1
        return best, best + len(surface)
    if inside:
        counts["surface_mismatch_kept"] += 1
        return start, end
    counts["dropped_out_of_range"] += 1
    return None


def read_deid_corpus(text_path: str | Path, phrase_path: str | Path, *, labels: tuple[str, ...] | None = None,
                     stats: dict[str, Any] | None = None) -> list[Document]:
    """Every note of ``text_path`` with its PHI spans from ``phrase_path`` (see the module docstring).

    ``labels``: the allowed types (an unknown type is a DataFormatError naming the line); None accepts
    any. ``stats`` (cleared first) receives the counts: records, patients, phi_spans, and the checks'
    ``offset_mismatches`` (with how each was resolved), ``overlapping_spans``,
    ``phi_for_unknown_record`` (PHI lines whose note is not in the text file; dropped).
    """
    text_path, phrase_path = Path(text_path), Path(phrase_path)
    docs: dict[tuple[str, str], Document] = {}
    for patient, note, text, line in _records(text_path):
        if (patient, note) in docs:
            raise DataFormatError(f"record {note} of patient {patient} appears twice", path=text_path, line=line,
                                  field="START_OF_RECORD", fix="keep one copy of each (patient, note) record")
        docs[(patient, note)] = Document(id=f"{patient}-{note}", text=text,
                                         metadata={"patient": patient, "note": note})
    counts: Counter = Counter()
    allowed = set(labels) if labels is not None else None
    for number, raw in iter_lines(phrase_path):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        parts = line.split(" ", 5)
        if len(parts) < 5:
            raise DataFormatError(f"expected '<patient> <note> <start> <end> <TYPE> <surface>', found {len(parts)} "
                                  "space-separated fields", path=phrase_path, line=number, field="columns",
                                  fix="check that the file is the PhysioNet deid id-phi.phrase")
        patient, note, start_s, end_s, label = parts[:5]
        surface = parts[5] if len(parts) > 5 else ""
        try:
            start, end = int(start_s), int(end_s)
        except ValueError:
            raise DataFormatError("start and end must be integers", path=phrase_path, line=number,
                                  field="start/end", fix="columns 3 and 4 are character offsets") from None
        if allowed is not None and label not in allowed:
            raise DataFormatError(f"unknown PHI type (valid: {', '.join(sorted(allowed))})", path=phrase_path,
                                  line=number, field="TYPE",
                                  fix="check that the file is the one the registry describes")
        doc = docs.get((patient, note))
        if doc is None:
            counts["phi_for_unknown_record"] += 1
            continue
        placed = _place(doc.text, start, end, surface, counts)
        if placed is not None:
            doc.spans.append(Span(start=placed[0], end=placed[1], label=label, text=doc.text[placed[0]:placed[1]]))
    for doc in docs.values():
        doc.spans.sort(key=lambda s: (s.start, s.end, s.label))
        counts["overlapping_spans"] += sum(1 for a, b in zip(doc.spans, doc.spans[1:]) if b.start < a.end)
    out = list(docs.values())
    problems = {k: v for k, v in counts.items() if v}
    if stats is not None:
        stats.clear()
        stats.update(records=len(out), patients=len({d.metadata["patient"] for d in out}),
                     phi_spans=sum(len(d.spans) for d in out), offset_mismatches=0, overlapping_spans=0)
        stats.update(problems)
    if problems:
        logger.warning("%s: %s", phrase_path.name, ", ".join(f"{k}: {v}" for k, v in sorted(problems.items())))
    return out


@functools.lru_cache(maxsize=2)
def _all_splits(text_path: str, phrase_path: str, labels: tuple[str, ...]) -> tuple[dict[str, list[Document]],
                                                                                    dict[str, Any]]:
    stats: dict[str, Any] = {}
    splits: dict[str, list[Document]] = {name: [] for name, _ in PATIENT_SPLIT}
    for doc in read_deid_corpus(text_path, phrase_path, labels=labels, stats=stats):
        splits[patient_split(doc.metadata["patient"])].append(doc)
    return splits, stats


def load_physionet_deid(spec: DatasetSpec, root: Path, split: str) -> _Result:
    """The loader of the ``physionet-deid`` spec: the notes of ``split``'s patients."""
    folder = root / spec.folder
    splits, stats = _all_splits(str(folder / TEXT_FILE), str(folder / PHRASE_FILE), tuple(spec.labels))
    docs = list(splits[split])
    return docs, {"patients": len({d.metadata["patient"] for d in docs})}, dict(stats)


def clear_cache() -> None:
    _all_splits.cache_clear()
