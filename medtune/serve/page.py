"""The files of the web page (packaged under ``medtune/serve/static``) and the ``/docs`` page.

The page is plain HTML, one stylesheet and one script, all served by the service itself (no external
asset, no inline script or style: the Content-Security-Policy allows only ``'self'``). ``/docs`` is
rendered here from the OpenAPI schema, HTML-escaped, with no script at all.
"""

from __future__ import annotations

import json
from functools import lru_cache
from html import escape
from importlib import resources
from typing import Any

from starlette.responses import Response

STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}


@lru_cache(maxsize=None)
def _read(name: str) -> bytes:
    return (resources.files("medtune.serve") / "static" / name).read_bytes()


def static_file(name: str) -> Response:
    """One of the packaged files (``name`` must be a key of :data:`STATIC`)."""
    return Response(_read(name), media_type=STATIC[name])


def _schema_block(value: Any) -> str:
    return f"<pre>{escape(json.dumps(value, indent=2, ensure_ascii=False))}</pre>"


def docs_html(schema: dict[str, Any]) -> str:
    """A readable, script-free page of the OpenAPI schema."""
    info = schema.get("info", {})
    parts = [f"<h1>{escape(info.get('title', 'API'))} {escape(str(info.get('version', '')))} API</h1>",
             f"<p>{escape(info.get('description', ''))}</p>",
             '<p>Machine-readable schema: <a href="/openapi.json">/openapi.json</a>. '
             "Authenticated endpoints take the header <code>Authorization: Bearer TOKEN</code>. "
             'The page for clinicians is at <a href="/">/</a>.</p>']
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            parts.append(f'<section class="endpoint"><h2><code>{escape(method.upper())} {escape(path)}</code> '
                         f"{escape(op.get('summary', ''))}</h2>")
            if op.get("description"):
                parts.append(f"<p>{escape(op['description'])}</p>")
            if op.get("security"):
                parts.append("<p><em>Needs the bearer token.</em></p>")
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body:
                parts.append("<h3>Request body (application/json)</h3>" + _schema_block(body))
            rows = "".join(f"<tr><td>{escape(str(code))}</td><td>{escape(r.get('description', ''))}</td></tr>"
                           for code, r in op.get("responses", {}).items())
            parts.append(f"<h3>Responses</h3><table><tr><th>status</th><th>meaning</th></tr>{rows}</table></section>")
    schemas = schema.get("components", {}).get("schemas", {})
    if schemas:
        parts.append("<h2>Schemas</h2>")
        for name, value in schemas.items():
            parts.append(f'<details><summary id="schema-{escape(name)}">{escape(name)}</summary>{_schema_block(value)}</details>')
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>medtune API</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/style.css"></head>'
            f'<body class="docs"><main>{"".join(parts)}</main></body></html>\n')
