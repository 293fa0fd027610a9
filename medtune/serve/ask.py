"""``POST /v1/ask``: a question answered from the knowledge base given by ``medtune serve --kb DIR``.

::

    {"question": "How is ABCD syndrome inherited?", "top_k": 5}

The answer is :meth:`medtune.retrieval.AskResult.to_dict` plus the knowledge base's name: ``answered``,
``score``, ``threshold``, the ``answer`` hit (passage text and its source: document, URL, file,
title, section, character range) and the ``hits``. A question the knowledge base cannot answer gets
``answered: false`` (status 200): it is an answer, not an error. Errors have the shape and codes of
the other routes: E601 (body too large), E603 (question longer than ``--max-chars``), E604 (not strict
JSON or not this shape), E607, E610, E620 (``--timeout``), E621 (more questions waiting than
``--max-queue``), E622 (the knowledge base is loading or failed to load). The access log counts the
question's characters, never its text.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from medtune.errors import MedtuneError, describe
from medtune.serve.schema import json_object
from medtune.serve.errors import ServiceError
from medtune.serve.security import ServeSettings

logger = logging.getLogger("medtune.serve")

__all__ = ["AskRequest", "KnowledgeBaseTarget", "parse_ask", "register_ask"]

_FIX = 'send {"question": TEXT, "top_k": 1-100} (see /docs)'


class AskRequest(BaseModel):
    """A question for the served knowledge base."""

    model_config = ConfigDict(strict=True, extra="forbid")

    question: str = Field(description="the question, in words")
    top_k: int = Field(5, ge=1, le=100, description="passages returned")


class KnowledgeBaseTarget:
    """The served knowledge base: loaded with the models (``/ready`` waits for it), asked on threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = self.path.name or "kb"
        self.kb: Any = None
        self.waiting = 0  # questions waiting or running (counted on the event loop's thread)

    def load(self) -> None:
        from medtune.retrieval import KnowledgeBase

        self.kb = KnowledgeBase.load(self.path)
        self.kb.ask("warm-up: fever?", top_k=1)


def _invalid(message: str, field: str | None = None) -> ServiceError:
    where = f"field '{field}': " if field else ""
    return ServiceError("E604", f"invalid request: {where}{message}", fix=_FIX)


def parse_ask(body: bytes, settings: ServeSettings) -> AskRequest:
    """The request, checked strictly (errors name the field, never a value)."""
    data = json_object(body, AskRequest.model_fields, _invalid)
    try:
        request = AskRequest.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        loc = [str(p) for p in first["loc"]]
        field = loc[0] if loc and loc[0] in AskRequest.model_fields else "<key>" if loc else None
        if first["type"] == "extra_forbidden":
            raise _invalid("not a field of an ask request", field) from None
        if first["type"] == "missing":
            raise _invalid("a required field is missing", field) from None
        if field == "top_k" and isinstance(first.get("input"), int):
            raise _invalid("must be an integer from 1 to 100", field) from None
        raise _invalid(f"has the wrong type ({describe(first.get('input'))})", field) from None
    if not request.question.strip():
        raise _invalid("the question is empty", "question")
    if len(request.question) > settings.max_chars:
        raise ServiceError("E603", f"the question has {len(request.question)} characters; this service takes at "
                                   f"most {settings.max_chars}", fix="ask a shorter question")
    return request


def register_ask(app: Any, service: Any, target: KnowledgeBaseTarget, settings: ServeSettings,
                 read_body: Callable[[Any, int], Awaitable[bytes]], responses: dict[Any, Any]) -> None:
    """Add ``POST /v1/ask`` to ``app`` (``service`` gives the token and readiness checks); the target is
    ``app.state.kb``."""
    running = asyncio.Semaphore(settings.model_workers)
    app.state.kb = target

    @app.post("/v1/ask", summary="Answer a question from the knowledge base", tags=["v1"], responses=responses,
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": AskRequest.model_json_schema()}}}})
    async def ask(request: Request) -> Response:
        """The best passages for the question with their sources and scores, and whether the best one is an
        answer (its score reaches the knowledge base's calibrated threshold); never an invented answer."""
        service.check_token(request)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise ServiceError("E607", "the body must be sent as application/json",
                               fix="send the header 'Content-Type: application/json'")
        parsed = parse_ask(await read_body(request, settings.max_body_bytes), settings)
        service.check_ready()
        if target.waiting >= settings.max_queue:
            raise ServiceError("E621", f"{target.waiting} questions are waiting (--max-queue {settings.max_queue})",
                               fix="retry later")
        log = {"kb": target.name, "characters": len(parsed.question), "top_k": parsed.top_k}
        request.scope["medtune.log"] = log
        target.waiting += 1
        try:
            async with running:
                result = await asyncio.wait_for(run_in_threadpool(target.kb.ask, parsed.question, parsed.top_k),
                                                settings.timeout_s)
        except asyncio.TimeoutError:
            raise ServiceError("E620", f"the request did not finish within {settings.timeout_s:g} s",
                               fix="retry later, ask for fewer passages, or raise --timeout") from None
        except MedtuneError:
            raise
        except Exception as err:  # noqa: BLE001 - never the message: it may quote the question
            logger.error("internal error (%s) while answering", type(err).__name__)
            raise ServiceError("E699", f"internal error ({type(err).__name__})",
                               fix="see the service log; report it if it persists") from None
        finally:
            target.waiting -= 1
        log["answered"] = result.answered
        payload = {"kb": target.name, **result.to_dict()}
        return Response(json.dumps(payload, ensure_ascii=False), media_type="application/json")
