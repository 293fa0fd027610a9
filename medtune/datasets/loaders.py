"""Parsers that turn each corpus's source files into :class:`~medtune.document.Document` lists.

Every loader takes ``(spec, root, split, **spec.loader_args)`` and returns ``(docs, split_notes,
corpus_notes)``: the documents of the split and two small dicts of counts that ``info()`` reports
(duplicates removed, overlaps resolved, ...). Errors name the file, the line and the field, never the
text. Corpora whose split we make (hoc, pubmedqa, ade-classification) are parsed once for all splits
and cached (``clear_cache()``).
"""

from __future__ import annotations

import dataclasses

import functools
import json
from pathlib import Path
from typing import Any, Callable, Iterator

from medtune.datasets import codiesp, deid, medquad
from medtune.datasets import qa as covid_qa
from medtune.datasets.assertion import load_bionlplab, load_negex_test
from medtune.datasets.registry import HOC_HALLMARKS, DatasetSpec
from medtune.datasets.splits import assign_split, bucket, sha256_order
from medtune.document import Document, Relation
from medtune.errors import DataFormatError, DatasetNotFoundError
from medtune.fileutils import iter_lines, read_text
from medtune.io.conll import read_conll
from medtune.io.pubtator import read_pubtator

Result = tuple[list[Document], dict[str, Any], dict[str, Any]]


def _split_file(spec: DatasetSpec, root: Path, split: str) -> Path:
    files = spec.files_for(split)
    if len(files) != 1:  # pragma: no cover - registry invariant
        raise AssertionError(f"{spec.name}/{split}: expected one file, got {len(files)}")
    return root / spec.folder / files[0].path


def _named_file(spec: DatasetSpec, root: Path, name: str) -> Path:
    for file in spec.files:
        if Path(file.path).name == name:
            return root / spec.folder / file.path
    raise AssertionError(f"{spec.name}: no file named {name}")  # pragma: no cover


def _check_label(label: str, spec: DatasetSpec, path: Path, line: int, field: str = "label") -> str:
    if label not in spec.labels:
        raise DataFormatError(
            f"unknown label for {spec.name} (valid: {', '.join(spec.labels)})",
            path=path, line=line, field=field,
            fix="check that the file is the one the registry describes (its sha256 is listed in "
                "medtune.datasets.get_spec(name).files)",
        )
    return label


# ----------------------------------------------------------------------------------- NER (PubTator)
def _span_signature(doc: Document) -> tuple:
    return (doc.text, tuple((s.start, s.end, s.label, tuple(s.ids)) for s in doc.spans))


def load_ncbi(spec: DatasetSpec, root: Path, split: str) -> Result:

    path = _split_file(spec, root, split)
    docs: list[Document] = []
    seen: dict[str, list[tuple]] = {}
    duplicates = 0
    for doc in read_pubtator(path):  # a repeated PMID comes with a distinct id (PMID-2)
        pmid = str(doc.metadata.get("pmid", doc.id))
        signature = _span_signature(doc)
        if signature in seen.get(pmid, ()):
            duplicates += 1  # an identical copy of a document already read
            continue
        seen.setdefault(pmid, []).append(signature)
        for span in doc.spans:
            span.attributes["type"] = span.label
            span.label = "Disease"
        docs.append(doc)
    notes = {"duplicate_documents_removed": duplicates} if duplicates else {}
    return docs, notes, {}


def load_bc5cdr(spec: DatasetSpec, root: Path, split: str, only: str | None = None) -> Result:

    path = _split_file(spec, root, split)
    docs = list(read_pubtator(path))
    if only is not None:
        for doc in docs:
            doc.spans = [s for s in doc.spans if s.label == only]
            doc.relations = []
            doc.metadata.pop("id_relations", None)
    return docs, {}, {}


def load_bc2gm(spec: DatasetSpec, root: Path, split: str) -> Result:

    path = _split_file(spec, root, split)
    docs = list(read_conll(path, doc_id_prefix=f"bc2gm-{split}"))
    for doc in docs:
        for span in doc.spans:
            if span.label not in spec.labels:
                raise DataFormatError(f"document '{doc.id}' has an entity of unknown type",
                                      path=path, field="tag", fix=f"expected only {spec.labels}")
    return docs, {}, {}


# ------------------------------------------------------------------------------------------ HoC
def _hoc_labels(raw: str, n_sentences: int, path: Path) -> list[list[str]]:
    segments = raw.rstrip("\r\n").split("<")
    if segments[0].strip():
        raise DataFormatError("label line does not start with '<'", path=path, line=1,
                              fix="each sentence's labels follow a '<'")
    segments = segments[1:]
    if len(segments) != n_sentences:
        raise DataFormatError(
            f"{len(segments)} label segments for {n_sentences} sentences", path=path, line=1,
            fix="text/<PMID>.txt and labels/<PMID>.txt must describe the same sentences",
        )
    out: list[list[str]] = []
    order = list(HOC_HALLMARKS.values())
    for i, segment in enumerate(segments):
        found: set[str] = set()
        for part in segment.split("AND"):
            part = part.strip()
            if not part or part == "NULL":
                continue
            top = part.split("--", 1)[0].strip()
            if top not in HOC_HALLMARKS:
                raise DataFormatError(f"unknown hallmark in sentence {i + 1}", path=path, line=1,
                                      field="label", fix=f"expected one of {list(HOC_HALLMARKS)}")
            found.add(HOC_HALLMARKS[top])
        out.append([label for label in order if label in found])
    return out


@functools.lru_cache(maxsize=2)
def _hoc_all(folder: str) -> dict[str, list[Document]]:
    text_dir, label_dir = Path(folder) / "text", Path(folder) / "labels"
    names = sorted((p.name for p in text_dir.iterdir() if p.suffix == ".txt"), key=lambda n: (len(n), n))
    order = list(HOC_HALLMARKS.values())
    splits: dict[str, list[Document]] = {"train": [], "dev": [], "test": []}
    for name in names:
        pmid = name[: -len(".txt")]
        label_path = label_dir / name
        if not label_path.is_file():
            raise DataFormatError("labels file missing for this abstract", path=label_path,
                                  fix="text/ and labels/ must hold the same <PMID>.txt files")
        lines = read_text(text_dir / name).replace("\r\n", "\n").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        sentence_labels = _hoc_labels(read_text(label_path), len(lines), label_path)
        offsets: list[list[int]] = []
        start = 0
        for line in lines:
            offsets.append([start, start + len(line)])
            start += len(line) + 1
        union = {label for labels in sentence_labels for label in labels}
        doc = Document(
            id=pmid,
            text=" ".join(lines),
            labels=[label for label in order if label in union],
            metadata={"pmid": pmid, "sentences": offsets, "sentence_labels": sentence_labels},
        )
        splits[assign_split(pmid, [("train", 70), ("dev", 10), ("test", 20)])].append(doc)
    return splits


def load_hoc(spec: DatasetSpec, root: Path, split: str) -> Result:
    return list(_hoc_all(str(root / spec.folder))[split]), {}, {}


# ------------------------------------------------------------------------------------- NICTA
def load_nicta(spec: DatasetSpec, root: Path, split: str) -> Result:
    path = _split_file(spec, root, split)
    docs: list[Document] = []
    abstract: str | None = None
    index = 0
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        if line.startswith("###"):
            abstract, index = line[3:].strip(), 0
            continue
        if abstract is None:
            raise DataFormatError("sentence before the first '###<id>' line", path=path, line=number,
                                  fix="every abstract starts with a '###<id>' line")
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataFormatError(f"expected 2 tab-separated fields, got {len(fields)}", path=path,
                                  line=number, fix="lines are 'label<TAB>sentence'")
        label = _check_label(fields[0].strip(), spec, path, number)
        docs.append(Document(id=f"{abstract}-{index}", text=fields[1], labels=[label],
                             metadata={"abstract_id": abstract, "sentence_index": index}))
        index += 1
    return docs, {}, {}


# ---------------------------------------------------------------------------------- TSV corpora
def _tsv_rows(path: Path, columns: list[str], *, header: bool) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of a TSV with exactly ``columns``; blank lines skipped, header checked."""
    layout = "<TAB>".join(columns)
    for number, line in iter_lines(path):
        if header and number == 1:
            if line.split("\t") != columns:
                raise DataFormatError(f"expected the header '{layout}'", path=path, line=1,
                                      fix="use the files the registry lists")
            continue
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise DataFormatError(f"expected {len(columns)} tab-separated fields, got {len(fields)}", path=path,
                                  line=number, fix=f"rows are '{layout}'" + ("" if header else " (no header)"))
        yield number, fields


def load_chemprot(spec: DatasetSpec, root: Path, split: str) -> Result:
    path = _split_file(spec, root, split)
    docs: list[Document] = []
    for number, fields in _tsv_rows(path, ["sentence", "label"], header=True):
        label = _check_label(fields[1].strip(), spec, path, number)
        row = len(docs)
        docs.append(Document(id=f"chemprot-{split}-{row}", text=fields[0], labels=[label],
                             metadata={"row": row}))
    return docs, {}, {}


def load_gad(spec: DatasetSpec, root: Path, split: str) -> Result:
    path = _split_file(spec, root, split)
    docs: list[Document] = []
    if split == "test":
        for number, fields in _tsv_rows(path, ["index", "sentence", "label"], header=True):
            label = _check_label(fields[2].strip(), spec, path, number)
            docs.append(Document(id=f"gad-test-{fields[0]}", text=fields[1], labels=[label],
                                 metadata={"row": int(fields[0]) if fields[0].isdigit() else fields[0]}))
        return docs, {}, {}
    row = -1
    for number, fields in _tsv_rows(path, ["sentence", "label"], header=False):
        row += 1
        in_dev = bucket(str(row)) < 10
        if in_dev != (split == "dev"):
            continue
        label = _check_label(fields[1].strip(), spec, path, number)
        docs.append(Document(id=f"gad-train-{row}", text=fields[0], labels=[label],
                             metadata={"row": row}))
    return docs, {}, {}


# -------------------------------------------------------------------------------------- PubMedQA
def _read_json(path: str) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise DataFormatError(f"invalid JSON ({err.msg})", path=path, line=err.lineno,
                              fix="use the PubMedQA files the registry lists") from None


@functools.lru_cache(maxsize=2)
def _pubmedqa_all(data_path: str, test_path: str) -> tuple[dict[str, list[Document]], dict[str, Any]]:
    data, truth = _read_json(data_path), _read_json(test_path)
    if not isinstance(data, dict) or not isinstance(truth, dict):
        raise DataFormatError("expected a JSON object keyed by PMID", path=data_path,
                              fix="use data/ori_pqal.json and data/test_ground_truth.json")
    unknown = [p for p in truth if p not in data]
    if unknown:
        raise DataFormatError(f"{len(unknown)} test PMIDs are not in ori_pqal.json (first: {unknown[0]})",
                              path=test_path, fix="use the two files of the same PubMedQA release")
    disagree = 0
    docs: dict[str, Document] = {}
    for pmid, item in data.items():
        where = f"{pmid}"
        try:
            contexts = [str(c) for c in item["CONTEXTS"]]
            question = str(item["QUESTION"])
            decision = str(item["final_decision"])
        except (KeyError, TypeError):
            raise DataFormatError("entry lacks QUESTION, CONTEXTS or final_decision", path=data_path,
                                  field=where, fix="use data/ori_pqal.json") from None
        if decision not in ("yes", "no", "maybe"):
            raise DataFormatError("final_decision is not yes/no/maybe", path=data_path,
                                  field=f"{where}.final_decision", fix="use data/ori_pqal.json")
        offsets: list[list[int]] = []
        start = 0
        for context in contexts:
            offsets.append([start, start + len(context)])
            start += len(context) + 1
        if pmid in truth and truth[pmid] != decision:
            disagree += 1
        docs[pmid] = Document(
            id=pmid, text=" ".join(contexts), text_pair=question, labels=[decision],
            metadata={"pmid": pmid, "contexts": offsets,
                      "context_labels": list(item.get("LABELS") or []),
                      "long_answer": item.get("LONG_ANSWER"),
                      "meshes": list(item.get("MESHES") or []),
                      "year": item.get("YEAR")},
        )
    rest = [p for p in data if p not in truth]
    dev = set(sha256_order(rest)[:50])
    splits = {
        "train": [docs[p] for p in rest if p not in dev],
        "dev": [docs[p] for p in rest if p in dev],
        "test": [docs[p] for p in data if p in truth],
    }
    notes = {"test_labels_disagreeing_with_ground_truth": disagree} if disagree else {}
    return splits, notes


def load_pubmedqa(spec: DatasetSpec, root: Path, split: str, context: str = "abstract") -> Result:
    """``context="long_answer"``: the question paired with the abstract's conclusion (LONG_ANSWER) instead
    of its other sections (PubMedQA's "reasoning-free" setting), for intermediate training; never the test
    split, whose conclusions would give its answers away."""
    splits, notes = _pubmedqa_all(str(_named_file(spec, root, "ori_pqal.json")),
                                  str(_named_file(spec, root, "test_ground_truth.json")))
    if context == "abstract":
        return list(splits[split]), {}, dict(notes)
    if split == "test":
        raise DatasetNotFoundError(f"{spec.name} has no test split: the test questions' long answers state "
                                   "their answers", fix="evaluate on pubmedqa --split test")
    docs = []
    for doc in splits[split]:
        answer = str(doc.metadata.get("long_answer") or "")
        if answer.strip():
            docs.append(dataclasses.replace(doc, text=answer, metadata={**doc.metadata, "contexts": [[0, len(answer)]]}))
    return docs, {}, dict(notes)


# ------------------------------------------------------------------------------------------- ADE
def _occurrences(sentence: str, mention: str) -> list[int]:
    out, i = [], sentence.find(mention)
    while i >= 0:
        out.append(i)
        i = sentence.find(mention, i + 1)
    return out


def _place_mentions(sentence: str, mentions: list[tuple[str, int]]) -> tuple[list[int | None], int]:
    """Sentence-level starts of mentions given with document-level starts.

    The sentence's offset in its document is unknown; it is the shift ``doc_start - local_start``
    on which most mentions agree. A mention that occurs once is placed there whatever the shift says;
    one that occurs several times takes the occurrence nearest ``doc_start - shift``. Returns the
    starts (None when the mention text is not in the sentence) and how many mentions disagreed with
    the shift.
    """
    votes: dict[int, int] = {}
    found = [_occurrences(sentence, m) for m, _ in mentions]
    for (_, doc_start), occ in zip(mentions, found):
        for local in occ:
            votes[doc_start - local] = votes.get(doc_start - local, 0) + 1
    shift = max(votes, key=lambda k: (votes[k], -k)) if votes else 0
    starts: list[int | None] = []
    disagree = 0
    for (_, doc_start), occ in zip(mentions, found):
        if not occ:
            starts.append(None)
            continue
        best = min(occ, key=lambda local: abs(doc_start - shift - local))
        disagree += best != doc_start - shift
        starts.append(best)
    return starts, disagree


@functools.lru_cache(maxsize=2)
def _ade_all(pos_path: str, neg_path: str) -> tuple[dict[str, list[Document]], dict[str, Any]]:
    """Every ADE sentence once, with its Drug/AE spans and ADE relations; split by PMID."""
    rows: dict[tuple[str, str], list[tuple[int, str, int, str, int]]] = {}  # in file order
    positive_rows = 0
    for number, line in iter_lines(pos_path):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 8 or not fields[0].strip().isdigit():
            raise DataFormatError(f"expected 8 '|'-separated fields with a PMID first, got {len(fields)}",
                                  path=pos_path, line=number,
                                  fix="rows are PMID|sentence|effect|start|end|drug|start|end")
        effect, e_start, e_end, drug, d_start, d_end = fields[-6:]
        try:
            e_start_i, d_start_i = int(e_start), int(d_start)
            int(e_end), int(d_end)
        except ValueError:
            raise DataFormatError("an offset is not an integer", path=pos_path, line=number,
                                  field="start/end", fix="rows are PMID|sentence|effect|start|end|drug|start|end")
        positive_rows += 1
        sentence = "|".join(fields[1:-6])  # a '|' inside the sentence stays in it
        rows.setdefault((fields[0].strip(), sentence), []).append((number, effect, e_start_i, drug, d_start_i))
    positives = len(rows)
    sentences: dict[tuple[str, str], str] = {key: "ADE" for key in rows}
    negative_rows = duplicates = overlap = 0
    for number, line in iter_lines(neg_path):
        if not line.strip():
            continue
        fields = line.split(" ", 2)
        if len(fields) != 3 or fields[1] != "NEG" or not fields[0].isdigit():
            raise DataFormatError("expected 'PMID NEG sentence'", path=neg_path, line=number,
                                  fix="rows of ADE-NEG.txt are 'PMID NEG sentence'")
        negative_rows += 1
        key = (fields[0], fields[2])
        if key in sentences:
            if sentences[key] == "ADE":
                overlap += 1
            else:
                duplicates += 1
            continue
        sentences[key] = "noADE"
    splits: dict[str, list[Document]] = {"train": [], "dev": [], "test": []}
    per_pmid: dict[str, int] = {}
    counts = {"mentions_moved_to_matching_occurrence": 0, "relation_rows_duplicated": 0,
              "relation_rows_mention_not_in_sentence": 0}
    for (pmid, sentence), label in sentences.items():
        k = per_pmid.get(pmid, 0)
        per_pmid[pmid] = k + 1
        doc = Document(id=f"{pmid}-{k}", text=sentence, labels=[label], metadata={"pmid": pmid})
        if label == "ADE":
            _ade_annotate(doc, rows[(pmid, sentence)], counts)
        splits[assign_split(pmid, [("train", 80), ("dev", 10), ("test", 10)])].append(doc)
    notes = {
        "positive_relation_rows": positive_rows,
        "positive_sentences": positives,
        "negative_rows": negative_rows,
        "negative_duplicates_removed": duplicates,
        "in_both_files_counted_positive": overlap,
        "pmids": len(per_pmid),
        **counts,
    }
    return splits, notes


def _ade_annotate(doc: Document, rows: list[tuple[int, str, int, str, int]], counts: dict[str, int]) -> None:
    """Drug and AE spans (deduplicated by offsets) and one ADE relation per distinct (drug, effect)."""
    mentions = [(m, s) for _, effect, e_start, drug, d_start in rows for m, s in ((effect, e_start), (drug, d_start))]
    starts, moved = _place_mentions(doc.text, mentions)
    counts["mentions_moved_to_matching_occurrence"] += moved
    spans: dict[tuple[int, int, str], str] = {}
    seen: set[tuple[str, str]] = set()

    def span_id(start: int | None, mention: str, label: str) -> str | None:
        if start is None:
            return None
        key = (start, start + len(mention), label)
        if key not in spans:
            spans[key] = f"T{len(spans) + 1}"
            doc.add_span(key[0], key[1], label, id=spans[key])
        return spans[key]

    for i, (_, effect, _, drug, _) in enumerate(rows):
        tail = span_id(starts[2 * i], effect, "AE")
        head = span_id(starts[2 * i + 1], drug, "Drug")
        if head is None or tail is None:
            counts["relation_rows_mention_not_in_sentence"] += 1
            continue
        if (head, tail) in seen:
            counts["relation_rows_duplicated"] += 1
            continue
        seen.add((head, tail))
        doc.relations.append(Relation(label="ADE", head=head, tail=tail, id=f"R{len(seen)}"))
    doc.spans.sort(key=lambda s: (s.start, s.end, s.label))


def load_ade(spec: DatasetSpec, root: Path, split: str, relations: bool = False) -> Result:
    splits, notes = _ade_all(str(_named_file(spec, root, "DRUG-AE.rel")),
                             str(_named_file(spec, root, "ADE-NEG.txt")))
    docs = list(splits[split])
    if relations:  # the `ade` corpus: entities and relations; negative sentences have neither
        docs = [Document(id=d.id, text=d.text, spans=d.spans, relations=d.relations, metadata=d.metadata)
                for d in docs]
    else:  # `ade-classification`: sentence labels only
        docs = [Document(id=d.id, text=d.text, labels=d.labels, metadata=d.metadata) for d in docs]
    return docs, {}, dict(notes)


# ------------------------------------------------------------------------------------- assertion
_ASSERTION_VALUE = {(False, False): "present", (True, False): "negated", (False, True): "uncertain"}


def _with_assertion(docs: list[Document]) -> list[Document]:
    """Set attributes['assertion'] (present / negated / uncertain) from the loaders' gold flags."""
    for doc in docs:
        for span in doc.spans:
            gold = span.attributes.get("gold") or {}
            key = (bool(gold.get("negated")), bool(gold.get("uncertain")))
            span.attributes["assertion"] = _ASSERTION_VALUE.get(key, "negated")
    return docs


def load_negex(spec: DatasetSpec, root: Path, split: str) -> Result:
    stats: dict[str, Any] = {}
    docs = _with_assertion(load_negex_test(root, stats=stats))
    return docs, {}, stats


@functools.lru_cache(maxsize=2)
def _assertion_train_dev(root: str) -> tuple[dict[str, list[Document]], dict[str, Any]]:
    splits: dict[str, list[Document]] = {"train": [], "dev": []}
    notes: dict[str, Any] = {}
    for source in ("bioscope", "chia"):
        stats: dict[str, Any] = {}
        for doc in _with_assertion(load_bionlplab(root, source, stats=stats)):
            # by sentence, so that the concepts of one sentence stay together
            splits[assign_split(f"{source}:{doc.text}", [("train", 90), ("dev", 10)])].append(doc)
        notes[source] = stats
    return splits, notes


def load_assertion(spec: DatasetSpec, root: Path, split: str) -> Result:
    if split == "test":
        stats: dict[str, Any] = {}
        return _with_assertion(load_bionlplab(root, "negex", stats=stats)), {}, {"negex": stats}
    splits, notes = _assertion_train_dev(str(root))
    return list(splits[split]), {}, dict(notes)


LOADERS: dict[str, Callable[..., Result]] = {
    "ncbi": load_ncbi,
    "bc5cdr": load_bc5cdr,
    "bc2gm": load_bc2gm,
    "hoc": load_hoc,
    "nicta": load_nicta,
    "chemprot": load_chemprot,
    "gad": load_gad,
    "pubmedqa": load_pubmedqa,
    "ade": load_ade,
    "negex": load_negex,
    "assertion": load_assertion,
    "covid-qa": covid_qa.load_covid_qa,
    "covid-qa-sentences": covid_qa.load_covid_qa_sentences,
    "physionet-deid": deid.load_physionet_deid,
    "medquad": medquad.load_medquad,
    "medquad-qtype": medquad.load_medquad_qtype,
    "codiesp": codiesp.load_codiesp,
}


def clear_cache() -> None:
    for fn in (_hoc_all, _pubmedqa_all, _ade_all, _assertion_train_dev):
        fn.cache_clear()
    covid_qa.clear_cache()
    deid.clear_cache()
    medquad.clear_cache()
    codiesp.clear_cache()
