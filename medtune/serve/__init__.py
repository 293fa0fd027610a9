"""``medtune serve``: pipelines and models behind a REST API and a web page (needs ``medtune[serve]``).

``serve()`` / ``serve_command`` (the CLI) in :mod:`medtune.serve.command`; the FastAPI app factory
``create_app`` in :mod:`medtune.serve.app` (imports FastAPI); the micro-batching queue in
:mod:`medtune.serve.batcher`; tokens, limits and settings in :mod:`medtune.serve.security`; error codes
E601-E699 in :mod:`medtune.serve.errors`. Importing this package does not import FastAPI.
"""

from __future__ import annotations

from medtune.serve.command import serve, serve_command
from medtune.serve.security import ServeSettings

__all__ = ["serve", "serve_command", "ServeSettings"]
