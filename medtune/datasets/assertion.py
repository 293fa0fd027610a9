"""Loaders of public assertion test sets, as one ``Document`` per row with one ``Concept`` span.

Each document's text is the row's sentence; its single span (label ``"Concept"``) covers the target
concept by character offsets into the sentence, and ``span.attributes["gold"]`` holds the reference
values as booleans. ``doc.metadata`` records the source, the line of the row and, where the loader had
to decide something (a concept not found, offsets repaired), a ``note``.

* :func:`load_negex_test`: the NegEx / ConText test kit (Chapman et al.), 2,376 sentences from 120
  reports: ``negex_annotations/rsAnnotations-1-120-random.txt``.
  gold = ``{"negated", "historical", "hypothetical", "family"}``.
* :func:`load_bionlplab`: the assertion benchmark files of Wang et al. 2022 (bionlplab): BioScope
  radiology reports, Chia trial criteria and the same NegEx test kit:
  ``assertion_bionlplab/{bioscope/bioscope.csv, chia/chia_without_scope_balanced.csv, negex/negex.csv}``.
  gold = ``{"negated", "uncertain"}``.

No row is ever dropped silently: rows a loader cannot place are kept with a whole-sentence span
(NegEx) or skipped on purpose (BioScope rows without a concept, see :func:`load_bionlplab`), counted
in ``stats`` (an optional dict the caller passes) and in one warning of the ``medtune.assertion``
logger. Messages never quote note text.
"""

from __future__ import annotations

import ast
import csv
import io
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from medtune.datasets.download import data_dir as resolve_data_dir
from medtune.document import Document
from medtune.errors import DataFormatError, DatasetNotFoundError
from medtune.fileutils import iter_lines, read_text

logger = logging.getLogger("medtune.assertion")

NEGEX_FOLDER = "negex_annotations"
NEGEX_FILE = "rsAnnotations-1-120-random.txt"
BIONLPLAB_FOLDER = "assertion_bionlplab"
BIONLPLAB_FILES = {
    "bioscope": "bioscope/bioscope.csv",
    "chia": "chia/chia_without_scope_balanced.csv",
    "negex": "negex/negex.csv",
}
CONCEPT_LABEL = "Concept"

_NEGATION = {"affirmed": False, "negated": True, "possible": False}
_TEMPORALITY = {"recent": "recent", "historical": "historical", "not particular": "hypothetical",
                "hypothetical": "hypothetical"}
_EXPERIENCER = {"patient": False, "other": True, "family member": True, "family": True}
_BIONLPLAB_LABELS = {"P": (False, False), "N": (True, False), "U": (False, True)}
MISSING_CONCEPT_CHOICES = ("skip", "sentence")
_Fragments = list[tuple[int, int]] | None


def _root(data_dir: str | Path | None) -> Path:
    return resolve_data_dir(data_dir)


def _require(root: Path, folder: str, rel: str, source: str) -> Path:
    path = root / folder / rel
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{source}: file {path} not found.",
            fix=f"put the file '{rel}' of the public corpus in {root / folder}/ (the folder layout of the "
                f"source repository), or point MEDTUNE_DATA_DIR / data_dir at the folder that holds "
                f"'{folder}/'",
        )
    return path


def find_concept(sentence: str, concept: str) -> tuple[int, int] | None:
    """Character offsets of ``concept`` in ``sentence``: case-insensitive, any white space between
    words, preferring a match at word boundaries, then one inside words, then one that also tolerates
    different punctuation between the words. None when it is not there."""
    words = concept.split()
    if not words:
        return None
    body = r"\s+".join(re.escape(w) for w in words)
    for pattern in (rf"(?<!\w){body}(?!\w)", body):
        m = re.search(pattern, sentence, re.IGNORECASE)
        if m:
            return m.start(), m.end()
    tokens = re.findall(r"\w+", concept)
    if tokens:
        m = re.search(r"\W*".join(re.escape(t) for t in tokens), sentence, re.IGNORECASE)
        if m:
            return m.start(), m.end()
    return None


def _note(counts: Counter, stats: dict[str, Any] | None, source: str, total: int) -> None:
    if stats is not None:
        stats.clear()
        stats["rows"] = total
        stats.update(counts)
    if counts:
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        logger.warning("%s: %d rows; %s", source, total, detail)


# --------------------------------------------------------------------------- NegEx test kit
def load_negex_test(
    data_dir: str | Path | None = None, *, stats: dict[str, Any] | None = None
) -> list[Document]:
    """The NegEx test kit (``rsAnnotations-1-120-random.txt``) as one document per row.

    Columns (tab-separated, one header row): id, concept, sentence, negation (Affirmed / Negated),
    temporality (Recent / Historical / Not particular), experiencer (Patient / Other / Family member).
    "Not particular" temporality is hypothetical; any experiencer other than the patient is family.
    A concept that cannot be found in its sentence (case-insensitively, white-space tolerant) keeps
    its row with a span over the whole sentence and ``metadata["note"] = "concept_not_found"``; the
    number of such rows goes into ``stats["concept_not_found"]`` and a warning.
    """
    path = _require(_root(data_dir), NEGEX_FOLDER, NEGEX_FILE, "NegEx test kit")
    docs: list[Document] = []
    counts: Counter = Counter()
    header_seen = False
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if not header_seen:
            header_seen = True
            if fields[0].strip().lower() in ("line number", "id", "number", "#"):
                continue
        while len(fields) > 6 and not fields[-1].strip():
            fields.pop()
        if len(fields) != 6:
            raise DataFormatError(f"expected 6 tab-separated columns, found {len(fields)}", path=path,
                                  line=number, field="columns",
                                  fix="each row is: id, concept, sentence, negation, temporality, "
                                      "experiencer")
        row_id, concept, sentence, negation, temporality, experiencer = (f.strip() for f in fields)
        if not sentence:
            raise DataFormatError("empty sentence", path=path, line=number, field="sentence",
                                  fix="every row needs the sentence that holds the concept")
        checks = (("negation", negation, _NEGATION), ("temporality", temporality, _TEMPORALITY),
                  ("experiencer", experiencer, _EXPERIENCER))
        for name, value, allowed in checks:
            if value.lower() not in allowed:
                raise DataFormatError(f"unknown {name} value", path=path, line=number, field=name,
                                      fix=f"use one of {sorted(allowed)} (case-insensitive)")
        time = _TEMPORALITY[temporality.lower()]
        doc = Document(id=f"negex-{row_id or number}", text=sentence,
                       metadata={"source": "negex_test", "line": number})
        found = find_concept(sentence, concept) if concept else None
        if found is None:
            counts["concept_not_found"] += 1
            found = (0, len(sentence))
            doc.metadata["note"] = "concept_not_found"
        span = doc.add_span(*found, CONCEPT_LABEL)
        span.attributes["gold"] = {
            "negated": _NEGATION[negation.lower()],
            "historical": time == "historical",
            "hypothetical": time == "hypothetical",
            "family": _EXPERIENCER[experiencer.lower()],
        }
        docs.append(doc)
    _note(counts, stats, f"{path.name}", len(docs))
    return docs


# --------------------------------------------------------------------------- bionlplab CSVs
def load_bionlplab(
    data_dir: str | Path | None = None,
    source: str = "bioscope",
    *,
    missing_concept: str = "skip",
    stats: dict[str, Any] | None = None,
) -> list[Document]:
    """One of the bionlplab assertion CSVs (``source`` = ``bioscope``, ``chia`` or ``negex``).

    Labels: ``P`` present, ``N`` negated, ``U`` uncertain (gold ``negated`` / ``uncertain``).
    ``concept_start`` / ``concept_end`` are checked against the concept text; offsets that do not
    cover it (or cover it only up to case, which is normal in ``negex.csv``) are kept when the text
    matches case-insensitively, else the concept is searched in the sentence (``note =
    "offsets_repaired"``), then word by word as a discontinuous span (``"fragments_aligned"``); when
    the sentence was cut inside the concept, the part that is there is kept (``"offsets_clipped"``).
    A ``concept_start`` of -1 is the file's own "not found" marker: such rows keep a whole-sentence
    span (``"concept_not_found"``), as in :func:`load_negex_test`. Any other concept that cannot be
    placed raises ``DataFormatError``.

    Chia rows of discontinuous concepts have empty offsets and a ``concept_start_end_list`` whose
    second pair has a wrong start but the right length: the first fragment is taken as given and the
    rest of the concept is searched after it; the span covers both and keeps ``fragments``.

    BioScope rows without a concept (3,362 of 7,605) carry a sentence-level label whose target is
    not annotated; ``missing_concept="skip"`` (default) leaves them out, counted in
    ``stats["no_concept_skipped"]`` and a warning; ``"sentence"`` keeps them with a whole-sentence
    span (``note = "no_concept"``).
    """
    if source not in BIONLPLAB_FILES:
        raise ValueError(f"unknown source {source!r}; use one of {sorted(BIONLPLAB_FILES)}")
    if missing_concept not in MISSING_CONCEPT_CHOICES:
        raise ValueError(f"missing_concept must be one of {MISSING_CONCEPT_CHOICES}")
    path = _require(_root(data_dir), BIONLPLAB_FOLDER, BIONLPLAB_FILES[source], f"bionlplab {source}")
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DataFormatError("empty file", path=path, line=1,
                              fix="restore the file from its source") from None
    except csv.Error as err:
        raise DataFormatError(f"not valid CSV ({err})", path=path, line=1, field="header",
                              fix="restore the file from its source") from None
    columns = {name.strip(): i for i, name in enumerate(header)}
    for required in ("sentence", "concept", "concept_start", "concept_end", "label"):
        if required not in columns:
            raise DataFormatError(f"missing column '{required}'", path=path, line=1, field=required,
                                  fix="the header must name sentence, concept, concept_start, "
                                      "concept_end, label")
    docs: list[Document] = []
    counts: Counter = Counter()
    total = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise DataFormatError(f"not valid CSV ({err})", path=path, line=reader.line_num,
                                  fix="check the quoting of this row") from None
        number = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        total += 1
        if len(row) != len(header):
            raise DataFormatError(f"expected {len(header)} columns, found {len(row)}", path=path,
                                  line=number, field="columns", fix="check the quoting of this row")

        record = {name: row[i] for name, i in columns.items()}
        get = record.get
        sentence = get("sentence", "")
        concept, label = get("concept", "").strip(), get("label", "").strip().upper()
        if label not in _BIONLPLAB_LABELS:
            raise DataFormatError("unknown label", path=path, line=number, field="label",
                                  fix=f"use one of {sorted(_BIONLPLAB_LABELS)}")
        if not sentence.strip():
            raise DataFormatError("empty sentence", path=path, line=number, field="sentence",
                                  fix="every row needs its sentence")
        sid = get("sentence_id", "").strip() or str(number)
        doc = Document(id=f"{source}-{number}-{sid}", text=sentence,
                       metadata={"source": f"bionlplab_{source}", "line": number})
        fragments: list[tuple[int, int]] | None = None
        if not concept:
            if missing_concept == "skip":
                counts["no_concept_skipped"] += 1
                continue
            counts["no_concept_sentence_span"] += 1
            offsets = (0, len(sentence))
            doc.metadata["note"] = "no_concept"
        else:
            pairs = get("concept_start_end_list", "")
            if not get("concept_start", "").strip() and pairs.strip():
                offsets, fragments, note = _fragment_list(sentence, concept, pairs, path, number)
            else:
                offsets, fragments, note = _checked_offsets(sentence, concept, get("concept_start", ""),
                                                            get("concept_end", ""), path, number)
            if note:
                counts[note] += 1
                doc.metadata["note"] = note
        span = doc.add_span(*offsets, CONCEPT_LABEL)
        if fragments is not None:
            span.fragments = fragments
        negated, uncertain = _BIONLPLAB_LABELS[label]
        span.attributes["gold"] = {"negated": negated, "uncertain": uncertain}
        docs.append(doc)
    _note(counts, stats, f"{path.parent.name}/{path.name}", total)
    return docs


def _int(value: str, path: Path, line: int, field: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise DataFormatError("not a whole number", path=path, line=line, field=field,
                              fix="offsets are 0-based character offsets into the sentence") from None


def _checked_offsets(sentence: str, concept: str, start_s: str, end_s: str, path: Path,
                     line: int) -> tuple[tuple[int, int], _Fragments, str | None]:
    """Offsets of a concept given by ``concept_start`` / ``concept_end``; see :func:`load_bionlplab`."""
    start = _int(start_s, path, line, "concept_start")
    end = _int(end_s, path, line, "concept_end")
    if 0 <= start < end <= len(sentence) and _same(sentence[start:end], concept):
        return (start, end), None, None
    if start < 0:
        # the file's own marker of a concept its authors could not find (negex.csv): try, else keep
        # the row with a whole-sentence span, as load_negex_test does
        found = find_concept(sentence, concept)
        if found is not None:
            return found, None, "offsets_repaired"
        return (0, len(sentence)), None, "concept_not_found"
    clipped = (start, min(end, len(sentence)))
    if (0 <= start < clipped[1] and concept.lower().startswith(sentence[start:clipped[1]].lower())
            and sentence[start:clipped[1]].strip()):
        # the sentence was cut inside the concept (Chia): keep the part that is there
        return clipped, None, "offsets_clipped"
    return _repair(sentence, concept, start if 0 <= start < len(sentence) else 0, path, line, "concept_start")


def _repair(sentence: str, concept: str, start: int, path: Path, line: int, field: str,
            first: tuple[int, int] | None = None) -> tuple[tuple[int, int], _Fragments, str]:
    """Place a concept whose offsets are wrong: contiguously anywhere in the sentence, else word by
    word (in order from ``start``, then in any order) as a discontinuous span, else (Chia) the first
    fragment ``first`` alone."""
    found = find_concept(sentence, concept)
    if found is not None:
        return found, None, "offsets_repaired"
    words = concept.split()
    pieces = _words_in_order(sentence, words, start)
    if pieces is None:
        located = [re.search(re.escape(w), sentence, re.IGNORECASE) for w in words]
        if all(located):
            pieces = sorted({(m.start(), m.end()) for m in located if m})
    if pieces is not None:
        fragments: list[tuple[int, int]] = []
        for a, b in pieces:
            if fragments and (a <= fragments[-1][1] or not sentence[fragments[-1][1]:a].strip()):
                fragments[-1] = (fragments[-1][0], max(b, fragments[-1][1]))
            else:
                fragments.append((a, b))
        if len(fragments) == 1:
            return fragments[0], None, "offsets_repaired"
        return (fragments[0][0], fragments[-1][1]), fragments, "fragments_aligned"
    if first is not None and 0 <= first[0] < first[1] <= len(sentence):
        return first, None, "fragments_first_only"
    raise DataFormatError("the concept is not in the sentence (at the given offsets, nor word by word)",
                          path=path, line=line, field=field,
                          fix="give offsets of the concept inside the sentence")


def _words_in_order(sentence: str, words: list[str], start: int) -> list[tuple[int, int]] | None:
    pieces = []
    pos = start
    for word in words:
        m = re.compile(re.escape(word), re.IGNORECASE).search(sentence, pos)
        if m is None:
            return None
        pieces.append((m.start(), m.end()))
        pos = m.end()
    return pieces


def _same(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


def _fragment_list(sentence: str, concept: str, raw: str, path: Path,
                   line: int) -> tuple[tuple[int, int], _Fragments, str]:
    """A Chia ``concept_start_end_list``: its first pair is right, the others have wrong starts, so
    the concept is aligned word by word from the first pair's start."""
    try:
        pairs = [(int(a), int(b)) for a, b in ast.literal_eval(raw.strip())]
    except (ValueError, SyntaxError, TypeError):
        raise DataFormatError("not a list of (start, end) pairs", path=path, line=line,
                              field="concept_start_end_list", fix="write e.g. [(3, 17), (25, 34)]") from None
    if not pairs or not 0 <= pairs[0][0] < len(sentence):
        raise DataFormatError("fragment offsets outside the sentence", path=path, line=line,
                              field="concept_start_end_list", fix="offsets are 0-based, end exclusive")
    return _repair(sentence, concept, pairs[0][0], path, line, "concept_start_end_list", first=pairs[0])


def loader_notes(docs: Iterable[Document]) -> dict[str, int]:
    """How many documents carry each ``metadata["note"]`` (rows a loader had to place by judgement)."""
    return dict(Counter(d.metadata.get("note") for d in docs if d.metadata.get("note")))


__all__ = ["load_negex_test", "load_bionlplab", "find_concept", "loader_notes", "CONCEPT_LABEL"]
