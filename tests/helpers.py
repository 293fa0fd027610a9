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
