"""MedQuAD (Ben Abacha and Demner-Fushman 2019): consumer-health question-answer pairs from NIH sites.

The corpus is one XML file per web page (``<Document id source url>`` with ``<Focus>`` and
``<QAPairs>``), in numbered source folders (``1_CancerGov_QA`` ... ``12_MPlusHerbsSupplements_QA``).
Upstream removed the answers of folders 10-12 (MedlinePlus A.D.A.M., Drugs, Herbs) for copyright; a
snapshot may hold them without answers or not at all. Every folder ``<digits>_*`` present is read, and
the notes count, per folder, the documents, the QA pairs, the answered pairs and the pairs whose answer
was removed (an empty ``<Answer>``), and name the known folders that are absent.

Two readings (loaders of :mod:`medtune.datasets.loaders`):

* ``medquad`` (retrieval): one document per *answered* QA pair, id ``<source>/<file stem>-<pid>``
  (``GARD/0000004-1``). ``text`` = the answer (leading and trailing white space removed), ``text_pair``
  = the question, ``labels`` = ``[qtype]``; metadata:
  ``document`` (the page key ``<source>/<id>``), ``source``, ``folder``, ``url``, ``focus``, ``qtype``,
  ``qid``, ``pair``, ``file`` (``<folder>/<name>.xml``). A knowledge base is built from ``text`` only
  (see :mod:`medtune.retrieval`).
* ``medquad-qtype`` (classification): one document per question, answered or not (the question type
  does not need the answer): ``text`` = the question, ``labels`` = ``[qtype]``.

A page is the ``<Document id>`` of a file within its source; a few CancerGov files share one
(``0000013_2.xml``, ``0000013_2_1.xml``, ...) and are one page. Split by page, never by pair: ``bucket = int(sha256('<source>/<document id>'), 16) % 100``; buckets
0-79 -> train, 80-89 -> dev, 90-99 -> test. All pairs of a page are in one split; the same question
text may still occur on two pages (another source about the same disease) in two splits, and
:func:`question_overlap` counts it.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtune.datasets.splits import assign_split
from medtune.document import Document
from medtune.errors import DataFormatError

if TYPE_CHECKING:  # the registry imports this module for MEDQUAD_SPEC_FIELDS
    from medtune.datasets.registry import DatasetSpec

__all__ = ["MEDQUAD_SPEC_FIELDS", "QTYPES", "SOURCE_FOLDERS", "REMOVED_FOLDERS", "SPLIT_PROPORTIONS", "page_split",
           "load_medquad", "load_medquad_qtype", "question_overlap", "clear_cache"]

#: The question types of the answered folders (1-9), most frequent first (the registry's labels).
QTYPES = ("information", "symptoms", "treatment", "inheritance", "frequency", "genetic changes", "causes",
          "exams and tests", "research", "outlook", "susceptibility", "considerations", "prevention",
          "stages", "complications", "support groups")

#: The folders of the upstream repository; 10-12 had their answers removed upstream.
SOURCE_FOLDERS = ("1_CancerGov_QA", "2_GARD_QA", "3_GHR_QA", "4_MPlus_Health_Topics_QA", "5_NIDDK_QA",
                  "6_NINDS_QA", "7_SeniorHealth_QA", "8_NHLBI_QA_XML", "9_CDC_QA", "10_MPlus_ADAM_QA",
                  "11_MPlusDrugs_QA", "12_MPlusHerbsSupplements_QA")
REMOVED_FOLDERS = SOURCE_FOLDERS[9:]
ANSWERED_FOLDERS = SOURCE_FOLDERS[:9]
SPLIT_PROPORTIONS = (("train", 80), ("dev", 10), ("test", 10))
_FOLDER_RE = re.compile(r"[0-9]+_[A-Za-z0-9_]+")

_COMMON: dict[str, Any] = dict(
    licence="CC BY 4.0", folder="medquad", source="abachaa/MedQuAD @ 577bd37", files=(), labels=QTYPES,
    citation="Ben Abacha A, Demner-Fushman D. A question-entailment approach to question answering. BMC "
             "Bioinformatics 2019;20:511. doi:10.1186/s12859-019-3119-4",
    manual_paths=tuple(f"{name}/" for name in ANSWERED_FOLDERS),
    split_note="No official split. Split by page (one XML file), never by QA pair: bucket = int(sha256("
               "'<source>/<document id>'), 16) % 100, e.g. 'GARD/0000004'; buckets 0-79 -> train, 80-89 -> dev, "
               "90-99 -> test. The same question text can occur on pages of two splits (two sources on one disease).",
    download_unsupported="MedQuAD is 5,497 small XML files; get them with `git clone "
                         "https://github.com/abachaa/MedQuAD` (commit 577bd37) and copy its numbered folders")

#: The keyword arguments of the registry's two DatasetSpecs (kept here: the registry imports them).
MEDQUAD_SPEC_FIELDS: tuple[dict[str, Any], ...] = (
    dict(_COMMON, name="medquad", task="retrieval", loader="medquad", pair=True,
         description="MedQuAD consumer-health QA pairs (NIH sites) for retrieval QA: one document per answered "
                     "pair, text = the answer, text_pair = the question, labels = [question type]; page key, URL "
                     "and focus in metadata. Answers removed upstream (folders 10-12, a few GARD pairs) are "
                     "counted in the notes, never loaded."),
    dict(_COMMON, name="medquad-qtype", task="classification", loader="medquad-qtype", sentence_count="documents",
         description="MedQuAD question types: one document per question (answered or not), text = the question, "
                     "labels = [its question type], one of the 16 types of the answered folders."),
)


def page_split(key: str) -> str:
    """The split of the page ``<source>/<document id>`` (see the module docstring)."""
    return assign_split(key, SPLIT_PROPORTIONS)


def _xml_error(path: Path, err: ET.ParseError) -> DataFormatError:
    line = err.position[0] if getattr(err, "position", None) else None
    return DataFormatError("not well-formed XML", path=path, line=line,
                           fix="restore the file from the MedQuAD repository (abachaa/MedQuAD)")


def _clean(value: str | None) -> str:
    return " ".join((value or "").split())


@functools.lru_cache(maxsize=2)
def _parse_all(root: str) -> tuple[dict[str, list[Document]], dict[str, list[Document]], dict[str, Any]]:
    """(answered pairs by split, questions by split, corpus notes) for the corpus folder ``root``."""
    base = Path(root)
    folders = sorted((p for p in base.iterdir() if p.is_dir() and _FOLDER_RE.fullmatch(p.name)),
                     key=lambda p: (int(p.name.split("_", 1)[0]), p.name))
    if not folders:
        raise DataFormatError("no MedQuAD source folders (1_CancerGov_QA, 2_GARD_QA, ...)", path=base,
                              fix="copy the numbered folders of the MedQuAD repository (abachaa/MedQuAD) here")
    pairs: dict[str, list[Document]] = {"train": [], "dev": [], "test": []}
    questions: dict[str, list[Document]] = {"train": [], "dev": [], "test": []}
    per_folder: dict[str, dict[str, int]] = {}
    qtypes: Counter[str] = Counter()
    other_qtypes = 0
    no_focus = 0
    repeated_answers = 0
    pages: dict[str, int] = {"train": 0, "dev": 0, "test": 0}
    page_files: Counter[str] = Counter()
    for folder in folders:
        stats = {"documents": 0, "qa_pairs": 0, "answered": 0, "answers_removed": 0}
        for path in sorted(folder.glob("*.xml")):
            try:
                page = ET.parse(path).getroot()
            except ET.ParseError as err:
                raise _xml_error(path, err) from None
            source = page.get("source") or folder.name.split("_", 1)[1]
            page_id = page.get("id") or path.stem
            key = f"{source}/{page_id}"
            split = page_split(key)
            stats["documents"] += 1
            page_files[key] += 1
            pages[split] += page_files[key] == 1
            focus = _clean(page.findtext("Focus"))
            no_focus += not focus
            seen_answers: set[str] = set()
            for n, pair in enumerate(page.iter("QAPair")):
                question_el = pair.find("Question")
                if question_el is None:
                    raise DataFormatError(f"QA pair {n} (0-based) has no <Question>", path=path,
                                          field="Question", fix="restore the file from the MedQuAD repository")
                qid = question_el.get("qid") or f"{page_id}-{n + 1}"
                qtype = (question_el.get("qtype") or "").strip()
                question = _clean(question_el.text)
                answer = (pair.findtext("Answer") or "").strip()
                stats["qa_pairs"] += 1
                known = qtype in QTYPES
                if known:
                    qtypes[qtype] += 1
                else:
                    other_qtypes += 1
                doc_id = f"{source}/{path.stem}-{pair.get('pid') or n + 1}"
                meta = {"document": key, "source": source, "folder": folder.name, "url": page.get("url") or "",
                        "focus": focus, "qtype": qtype, "qid": qid, "pair": pair.get("pid") or str(n + 1),
                        "file": f"{folder.name}/{path.name}"}
                if question and known:
                    questions[split].append(Document(id=doc_id, text=question, labels=[qtype],
                                                     metadata={"document": key, "source": source}))
                if not answer:
                    stats["answers_removed"] += 1
                    continue
                stats["answered"] += 1
                normalised = _clean(answer)
                repeated_answers += normalised in seen_answers
                seen_answers.add(normalised)
                pairs[split].append(Document(id=doc_id, text=answer, text_pair=question,
                                             labels=[qtype] if known else [], metadata=meta))
        per_folder[folder.name] = stats
    files_shared = sum(n for n in page_files.values() if n > 1)
    present = {f.name for f in folders}
    notes: dict[str, Any] = {
        "folders": per_folder,
        "absent_folders": [f for f in SOURCE_FOLDERS if f not in present],
        "documents": sum(s["documents"] for s in per_folder.values()),
        "qa_pairs": sum(s["qa_pairs"] for s in per_folder.values()),
        "answered": sum(s["answered"] for s in per_folder.values()),
        "answers_removed": sum(s["answers_removed"] for s in per_folder.values()),
        "qtypes": dict(qtypes.most_common()),
        "questions_of_other_types": other_qtypes,
        "documents_without_focus": no_focus,
        "answers_repeated_within_a_document": repeated_answers,
        "pages_per_split": pages,
        "files_sharing_a_page": files_shared,
    }
    return pairs, questions, notes


def _corpus_root(spec: DatasetSpec, root: Path) -> Path:
    path = root / spec.folder
    if not path.is_dir():
        raise DataFormatError("the MedQuAD folder is missing", path=path,
                              fix="git clone https://github.com/abachaa/MedQuAD and copy its folders here")
    return path


def load_medquad(spec: DatasetSpec, root: Path, split: str) -> tuple[list[Document], dict, dict]:
    pairs, _, notes = _parse_all(str(_corpus_root(spec, root)))
    return list(pairs[split]), {}, dict(notes)


def load_medquad_qtype(spec: DatasetSpec, root: Path, split: str) -> tuple[list[Document], dict, dict]:
    _, questions, notes = _parse_all(str(_corpus_root(spec, root)))
    return list(questions[split]), {}, dict(notes)


def question_overlap(train: list[Document], other: list[Document]) -> int:
    """How many documents of ``other`` ask a question (case and white space ignored) asked in ``train``."""

    def question(doc: Document) -> str:
        return _clean(doc.text_pair if doc.text_pair is not None else doc.text).lower()

    seen = {question(d) for d in train}
    return sum(question(d) in seen for d in other)


def clear_cache() -> None:
    _parse_all.cache_clear()
