"""The service's coded errors (E600-E699) and the one JSON shape every error response has.

``{"error": {"code": "E601", "message": "...", "fix": "..."}}``. Messages follow the rule of
:mod:`medtune.errors`: sizes, counts, field names and medtune's own names, never note text, a token or
any part of a request body.

=====  ======  ==================================================================================
code   status  when
=====  ======  ==================================================================================
E601   413     the request body is larger than ``--max-body-bytes``
E602   413     more documents in one request than ``--max-documents``
E603   413     a document (text plus text_pair) longer than ``--max-chars`` characters
E604   422     the body is not strict JSON or not the shape of an analyze request / a medtune document
E605   404     ``model`` names nothing this service serves
E606   422     ``model`` is missing while several pipelines or models are served
E607   415     the body is not sent as ``Content-Type: application/json``
E608   404     no such endpoint (or 405: the method is not allowed there)
E610   401     no ``Authorization: Bearer`` header, or a token that does not match
E611   --      (start-up) a non-loopback ``--host`` without a token
E612   --      (start-up) the token file is missing, unreadable, empty or holds several lines
E620   504     the request did not finish within ``--timeout`` seconds
E621   503     the queue is full (more documents waiting than ``--max-queue``)
E622   503     the models are still loading, or failed to load (see the service log)
E630   --      (start-up) an invalid ``medtune serve`` option or target
E699   500     an internal error of the service (its message is never shown)
=====  ======  ==================================================================================
"""

from __future__ import annotations

from typing import Any

from medtune.errors import MedtuneError

STATUS = {"E601": 413, "E602": 413, "E603": 413, "E604": 422, "E605": 404, "E606": 422, "E607": 415,
          "E608": 404, "E610": 401, "E620": 504, "E621": 503, "E622": 503, "E699": 500}


class ServiceError(MedtuneError):
    """An error of ``medtune serve``: at start-up (bad options, no token) or answering a request."""

    code = "E600"

    def __init__(self, code: str, message: str, *, fix: str | None = None, status: int | None = None) -> None:
        self.code = code
        self.status = status if status is not None else STATUS.get(code, 400)
        super().__init__(message, fix=fix)


def error_body(err: MedtuneError) -> dict[str, Any]:
    """The JSON body of an error response: the code, the message without the code, and the fix."""
    return {"error": {"code": err.code, "message": err.message, "fix": err.fix or ""}}
