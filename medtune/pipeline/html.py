"""A standalone HTML view of annotated documents (no scripts, fonts or styles fetched from anywhere).

Entities are highlighted by type; negated findings are struck through, uncertain ones underlined with
dashes, historical / hypothetical / family ones marked with a small tag; hovering an entity shows its
type, score, assertion flags and linked ids. Relations are listed under each document, and the codes a
coding component suggested with their evidence. Every piece of document text is HTML-escaped.
"""

from __future__ import annotations

import hashlib
from html import escape
from typing import Iterable

from medtune.document import Document, Span

_PALETTE = ("#fde68a", "#bfdbfe", "#bbf7d0", "#fecaca", "#ddd6fe", "#fbcfe8", "#fed7aa", "#a5f3fc", "#d9f99d")
_FLAGS = ("negated", "uncertain", "historical", "hypothetical", "family", "conditional")

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;max-width:60rem;color:#111}
.doc{border:1px solid #ddd;border-radius:6px;padding:1rem 1.2rem;margin:0 0 1.5rem}
.doc h2{font-size:1rem;margin:0 0 .6rem;color:#555}
.text{line-height:1.9;white-space:pre-wrap}
.ent{border-radius:3px;padding:1px 2px}
.ent sub{font-size:.65em;font-weight:600;margin-left:2px;color:#333}
.negated{text-decoration:line-through;text-decoration-thickness:2px}
.uncertain{border-bottom:2px dashed #333}
.tag{font-size:.6em;background:#333;color:#fff;border-radius:2px;padding:0 2px;margin-left:2px}
table{border-collapse:collapse;margin-top:.8rem;font-size:.9em}td,th{border:1px solid #ddd;padding:2px 6px}
.legend span{margin-right:.8rem}
"""


def _colour(label: str) -> str:
    return _PALETTE[int(hashlib.sha256(label.encode()).hexdigest(), 16) % len(_PALETTE)]


def _title(span: Span) -> str:
    parts = [span.label]
    if span.score is not None:
        parts.append(f"score {span.score:.2f}")
    flags = [f for f in _FLAGS if span.attributes.get(f)]
    if flags:
        parts.append("assertion: " + ", ".join(flags))
    if span.ids:
        parts.append("ids: " + ", ".join(span.ids))
    return " | ".join(parts)


def _entity(doc: Document, span: Span, inner: str) -> str:
    classes = ["ent"] + [f for f in ("negated", "uncertain") if span.attributes.get(f)]
    tags = "".join(f'<span class="tag">{f}</span>' for f in _FLAGS[2:] if span.attributes.get(f))
    return (f'<span class="{" ".join(classes)}" style="background:{_colour(span.label)}" '
            f'title="{escape(_title(span))}" id="{escape(doc.id)}-{escape(str(span.id))}">{inner}'
            f"<sub>{escape(span.label)}</sub>{tags}</span>")


def _render_text(doc: Document) -> str:
    """Text with non-overlapping entities highlighted (on overlap, the longer span is shown)."""
    chosen: list[Span] = []
    for span in sorted(doc.spans, key=lambda s: (-(s.end - s.start), s.start)):
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    chosen.sort(key=lambda s: s.start)
    out, cursor = [], 0
    for span in chosen:
        out.append(escape(doc.text[cursor:span.start]))
        out.append(_entity(doc, span, escape(doc.text[span.start:span.end])))
        cursor = span.end
    out.append(escape(doc.text[cursor:]))
    return "".join(out)


def _relations(doc: Document) -> str:
    spans = doc.span_by_id()
    rows = []
    for rel in doc.relations:
        head, tail = spans.get(rel.head), spans.get(rel.tail)
        if head is None or tail is None:
            continue
        score = f"{rel.score:.2f}" if rel.score is not None else ""
        rows.append(f"<tr><td>{escape(head.text or '')} <small>({escape(head.label)})</small></td>"
                    f"<td>{escape(rel.label)}</td><td>{escape(tail.text or '')} <small>({escape(tail.label)})"
                    f"</small></td><td>{score}</td></tr>")
    if not rows:
        return ""
    return ("<table><tr><th>head</th><th>relation</th><th>tail</th><th>score</th></tr>" + "".join(rows)
            + "</table>")


def _codes(doc: Document) -> str:
    """The codes a ``coding`` component suggested (``metadata["codes"]``), each with its evidence phrases."""
    codes = doc.metadata.get("codes")
    if not isinstance(codes, list) or not codes:
        return ""
    spans = doc.span_by_id()
    rows = []
    for entry in codes:
        if not isinstance(entry, dict):
            continue
        evidence = "; ".join(escape(spans[i].text or "") for i in entry.get("evidence") or [] if i in spans)
        score = entry.get("score")
        shown = f"{score:.2f}" if isinstance(score, (int, float)) else ""
        rows.append(f"<tr><td>{escape(str(entry.get('code', '')))}</td><td>{escape(str(entry.get('description', '')))}"
                    f"</td><td>{shown}</td><td>{evidence}</td></tr>")
    return ("<table><tr><th>code (a suggestion)</th><th>description</th><th>score</th><th>evidence</th></tr>"
            + "".join(rows) + "</table>")


def render_html(docs: Iterable[Document], title: str = "medtune analysis") -> str:
    docs = list(docs)
    labels = sorted({s.label for d in docs for s in d.spans})
    legend = "".join(f'<span class="ent" style="background:{_colour(lab)}">{escape(lab)}</span>' for lab in labels)
    body = []
    for doc in docs:
        body.append(f'<div class="doc"><h2>{escape(doc.id)}</h2><div class="text">{_render_text(doc)}</div>'
                    f"{_relations(doc)}{_codes(doc)}</div>")
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>"
            f'<p class="legend">{legend} <span class="ent negated">negated</span> '
            f'<span class="ent uncertain">uncertain</span></p>' + "".join(body) + "</body></html>\n")
