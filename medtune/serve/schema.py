"""The body of ``POST /v1/analyze``, parsed strictly, and its JSON schema for ``/openapi.json``.

::

    {"model": "note", "text": "No fever."}
    {"model": "note", "documents": ["No fever.", {"id": "n1", "text": "Mother had breast cancer."}]}

A document is a string or a medtune JSON document (the fields of ``Document.to_dict`` / the JSONL of
``medtune predict``: spans given in it, e.g. gold concepts for an assertion pipeline, are kept). Strings
are named ``doc-0``, ``doc-1``, ... in order. The body is read as strict JSON (no NaN, no duplicate
keys, no lone surrogates: the rules of medtune's JSONL reader) and errors name the field, never a value.
"""

from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medtune.document import Document
from medtune.errors import DataFormatError, describe
from medtune.io._jsonl_schema import (
    DocumentModel,
    _DuplicateKeys,
    _loads,
    _walk,
    check_tokens,
    field_path,
    to_document,
)
from medtune.serve.errors import ServiceError
from medtune.serve.security import ServeSettings

_FIX = ('send {"model": NAME, "documents": [TEXT or DOCUMENT, ...]} or {"model": NAME, "text": TEXT}; '
        "a document has the fields of Document.to_dict (see /docs)")


class AnalyzeRequest(BaseModel):
    """One text, or a list of texts and medtune documents, for one served pipeline or model."""

    model_config = ConfigDict(strict=True, extra="forbid")

    model: str | None = Field(None, description="the served name (GET /v1/models); optional when only one is served")
    text: str | None = Field(None, description="one text (instead of documents)")
    documents: list[str | DocumentModel] | None = Field(
        None, description="texts and/or medtune JSON documents (fields of Document.to_dict)")


class _RawRequest(BaseModel):
    """The request as parsed: each document is checked on its own, so that errors name it."""

    model_config = ConfigDict(strict=True, extra="forbid")

    model: str | None = None
    text: str | None = None
    documents: list[Any] | None = None


class AnalyzeResponse(BaseModel):
    model: str = Field(description="the name that answered")
    documents: list[DocumentModel] = Field(description="the annotated documents, in request order; offsets are "
                                                       "0-based Unicode code points into the submitted text")


class ErrorDetail(BaseModel):
    code: str
    message: str
    fix: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


def _invalid(message: str, field: str | None = None) -> ServiceError:
    where = f"field '{field}': " if field else ""
    return ServiceError("E604", f"invalid request: {where}{message}", fix=_FIX)


def _document(model: DocumentModel, index: int) -> Document:
    doc = to_document(model)
    try:
        check_tokens(doc.metadata.get("tokens"), len(doc.text), "tokens" in doc.metadata)
        return doc.validate(name=f"documents[{index}]")
    except DataFormatError as err:
        name = f"documents[{index}]"
        detail = err.detail if err.detail.startswith(name) else f"{name}, field '{err.field}': {err.detail}"
        raise ServiceError("E604", f"invalid request: {detail}", fix=err.fix) from None


def json_object(body: bytes, fields: Any, invalid: Callable[..., ServiceError]) -> dict[str, Any]:
    """A request body as a JSON object, checked strictly: UTF-8, one object, no key twice, every value
    within the reader's limits. Errors (``invalid(message, field)``) name the field when it is one of
    ``fields``, else ``<key>`` (a key may be note text), and never a value."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise invalid(f"the body is not UTF-8 (byte {err.start} of {len(body)})") from None
    try:
        data = _loads(text)
    except DataFormatError as err:
        raise invalid(err.detail) from None
    if not isinstance(data, dict):
        raise invalid(f"the body holds {describe(data)}, not a JSON object")
    if isinstance(data, _DuplicateKeys):
        raise invalid("the request object has the same key twice")
    for key, value in data.items():
        try:
            _walk(value)
        except DataFormatError as err:
            raise invalid(err.detail, _join(key if key in fields else "<key>", err.field)) from None
    return data


def parse_analyze(body: bytes, settings: ServeSettings) -> tuple[str | None, list[Document]]:
    """The model name and the documents of a request body, checked against the limits."""
    data = json_object(body, _RawRequest.model_fields, _invalid)
    docs_raw = data.get("documents")
    if isinstance(docs_raw, list) and len(docs_raw) > settings.max_documents:
        raise ServiceError("E602", f"{len(docs_raw)} documents in one request; this service takes at most "
                                   f"{settings.max_documents}", fix="send them in several requests")
    try:
        request = _RawRequest.model_validate(data)
    except ValidationError as err:
        raise _explain(err, "") from None
    if (request.text is None) == (request.documents is None):
        raise _invalid("give either 'text' or 'documents', not both or neither")
    items: list[Any] = [request.text] if request.text is not None else list(request.documents or [])
    if not items:
        raise _invalid("'documents' is empty", "documents")
    docs: list[Document] = []
    strings = 0
    for k, item in enumerate(items):
        if isinstance(item, str):
            doc = Document(id=f"doc-{strings}", text=item)
            strings += 1
        elif isinstance(item, dict):
            try:
                doc = _document(DocumentModel.model_validate(item), k)
            except ValidationError as err:
                raise _explain(err, f"documents[{k}]") from None
        else:
            raise _invalid(f"is {describe(item)}, not a text or a document object", f"documents[{k}]")
        size = len(doc.text) + len(doc.text_pair or "")
        if size > settings.max_chars:
            raise ServiceError("E603", f"document {k} (0-based) has {size} characters; this service takes at most "
                                       f"{settings.max_chars} per document",
                               fix="split the note into parts, or start the service with a larger --max-chars")
        docs.append(doc)
    return request.model, docs


def _top(key: Any) -> str:
    """A top-level key of the request when it is one of its fields, else ``<key>`` (it may be note text)."""
    return key if key in _RawRequest.model_fields else "<key>"


def _join(name: str, sub: str | None) -> str:
    if not sub:
        return name
    return name + sub if sub.startswith("[") else f"{name}.{sub}"


def _explain(err: ValidationError, prefix: str) -> ServiceError:
    """The first problem of a validation error, by field (a value is described, never shown)."""
    first = err.errors(include_url=False)[0]
    loc = list(first["loc"])
    if prefix:
        where = _join(prefix, field_path(loc) or None)
    else:
        where = _join(_top(loc[0]), field_path(loc[1:]) or None) if loc else ""
    if first["type"] == "extra_forbidden":
        return _invalid("not a field of an analyze request or a medtune document", where)
    if first["type"] == "missing":
        return _invalid("a required field is missing", where)
    return _invalid(f"has the wrong type ({describe(first.get('input'))})", where)
