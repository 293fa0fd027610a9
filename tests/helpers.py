"""Small made-up documents for task tests."""

from __future__ import annotations

import re

from medtune.document import Document

SENTENCES = [
    "The patient has breast cancer and fever, no cough.",
    "A mutation in the gene causes a rare syndrome with fever.",
    "She denies cough but has a protein deficiency.",
    "Risk of breast cancer was high in the patient.",
]
ENTITIES = {"breast cancer": "Disease", "fever": "Disease", "cough": "Disease", "syndrome": "Disease",
            "protein deficiency": "Disease", "gene": "Gene", "protein": "Gene"}


def ner_docs(n: int, repeat: int = 1, prefix: str = "d") -> list[Document]:
    docs = []
    pattern = re.compile("|".join(sorted(map(re.escape, ENTITIES), key=len, reverse=True)))
    for i in range(n):
        text = " ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(repeat))
        doc = Document(id=f"{prefix}{i}", text=text)
        for m in pattern.finditer(text):
            doc.add_span(m.start(), m.end(), ENTITIES[m.group()])
        docs.append(doc)
    return docs


def cls_docs(n: int, *, multi: bool = False, pair: bool = False, prefix: str = "c") -> list[Document]:
    docs = []
    for i in range(n):
        if multi:
            labels = [lab for lab, on in (("fever", i % 2 == 0), ("gene", i % 3 == 0)) if on]
            words = (["fever cough"] if "fever" in labels else ["the patient"]) + (
                ["gene protein"] if "gene" in labels else ["with a"])
            text = " ".join(words * (1 + i % 4))
        else:
            labels = ["pos"] if i % 2 else ["neg"]
            text = ("fever cough " if i % 2 else "gene protein ") * (1 + i % 5)
        docs.append(Document(id=f"{prefix}{i}", text=text.strip(), labels=labels,
                             text_pair="is it a disease ?" if pair else None))
    return docs


REL_TEMPLATES = [
    # (text, [(mention, label, occurrence)], [(head index, tail index)])
    ("The drug caused fever but the dose was for cough.", [("drug", "Drug"), ("fever", "AE"), ("dose", "Drug"),
                                                           ("cough", "AE")], [(0, 1)]),
    ("The drug was given for fever and the dose caused cough.", [("drug", "Drug"), ("fever", "AE"),
                                                                 ("dose", "Drug"), ("cough", "AE")], [(2, 3)]),
    ("No drug was given to the patient.", [], []),
    ("A rash and fever followed the drug.", [("rash", "AE"), ("fever", "AE"), ("drug", "Drug")], [(2, 0), (2, 1)]),
]


def rel_docs(n: int, prefix: str = "r") -> list[Document]:
    """Sentences with Drug/AE spans and Drug -> AE 'ADE' relations that depend on the wording."""
    from medtune.document import Relation

    docs = []
    for i in range(n):
        text, mentions, rels = REL_TEMPLATES[i % len(REL_TEMPLATES)]
        doc = Document(id=f"{prefix}{i}", text=text)
        for k, (mention, label) in enumerate(mentions):  # each mention occurs once in its sentence
            start = text.index(mention)
            doc.add_span(start, start + len(mention), label, id=f"T{k + 1}")
        for j, (h, t) in enumerate(rels):
            doc.relations.append(Relation(label="ADE", head=f"T{h + 1}", tail=f"T{t + 1}", id=f"R{j + 1}"))
        docs.append(doc)
    return docs


ASSERTION_TEMPLATES = [
    ("The patient denies fever.", "fever", "negated"),
    ("The patient has a cough.", "cough", "present"),
    ("No cough was noted.", "cough", "negated"),
    ("Fever is possible with the drug.", "Fever", "uncertain"),
    ("She has breast cancer.", "breast cancer", "present"),
]


def assertion_docs(n: int, prefix: str = "a") -> list[Document]:
    """One finding per sentence with its assertion value in ``attributes['assertion']``."""
    docs = []
    for i in range(n):
        text, mention, value = ASSERTION_TEMPLATES[i % len(ASSERTION_TEMPLATES)]
        doc = Document(id=f"{prefix}{i}", text=text)
        start = text.index(mention)
        doc.add_span(start, start + len(mention), "Problem", attributes={"assertion": value})
        docs.append(doc)
    return docs


QA_SENTENCES = [
    "The drug caused fever but the dose was for cough.",
    "A dose of the drug was given for fever and cough.",
    "The patient has cough and fever with the drug dose.",
    "Fever and cough followed the dose of the drug.",
]
QA_WORDS = ("drug", "dose", "fever", "cough")


def qa_docs(n: int, prefix: str = "q", none_every: int = 0) -> list[Document]:
    """Questions ``"<word> ?"`` over two sentences that both hold the word (the gold answer is its
    first occurrence; SQuAD scores answer texts, so either is right); with ``none_every`` k, every
    k-th question asks for ``gene``, which no context holds (no answer)."""
    docs = []
    for i in range(n):
        text = " ".join(QA_SENTENCES[(i + k) % len(QA_SENTENCES)] for k in range(2))
        if none_every and i % none_every == 0:
            docs.append(Document(id=f"{prefix}{i}", text=text, text_pair="gene ?"))
            continue
        word = QA_WORDS[i % len(QA_WORDS)]
        doc = Document(id=f"{prefix}{i}", text=text, text_pair=f"{word} ?")
        start = text.lower().index(word)
        doc.add_span(start, start + len(word), "answer")
        docs.append(doc)
    return docs


def assert_pipeline_refused(path, components: str, match: str) -> None:
    """Write a pipeline YAML with these ``components:`` lines to ``path`` and check it is refused with
    a ConfigError whose message matches ``match``."""
    import pytest

    from medtune.errors import ConfigError
    from medtune.pipeline import Pipeline

    path.write_text("name: x\ncomponents:\n" + components, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        Pipeline.from_yaml(path)


def load_module(path, name: str):
    """Import the Python file ``path`` as module ``name`` (fixture build scripts share a file name)."""
    import importlib.util
    import sys

    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_benchmark(monkeypatch, script: str, name: str):
    """Import ``benchmarks/<script>`` as module ``name``. Its ``_env`` import sets environment variables
    and ``sys.path``; ``monkeypatch`` restores them after the test."""
    import os
    import sys
    from pathlib import Path

    folder = Path(__file__).parent.parent / "benchmarks"
    monkeypatch.setattr(sys, "path", [str(folder), *sys.path])
    for key in ("MEDTUNE_DATA_DIR", "HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM"):
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])
        else:
            monkeypatch.setenv(key, "")
            monkeypatch.delenv(key)
    return load_module(folder / script, name)
