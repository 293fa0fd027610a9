"""``medtune serve``: the command (``serve_command``, registered by ``medtune/cli.py``) and ``serve()``.

Everything that can be checked is checked before a model loads or a port opens: the ``[serve]`` extra
is installed, the options are valid, a token is set when the host is not a loopback address, every
target exists and is a pipeline YAML or a medtune model directory. Then the port is bound, uvicorn
serves the app, and the models load in the background (``/ready`` says when). SIGTERM or Ctrl-C stop
the service gracefully: uvicorn stops accepting connections, finishes the requests in flight (up to
``--timeout`` seconds), the batchers finish their queues, and ``serve()`` returns.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import logging
import logging.config
import os
import signal
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List, Optional

import typer

from medtune.errors import MissingExtraError
from medtune.serve.errors import ServiceError
from medtune.serve.security import TOKEN_ENV, ServeSettings, check_host, load_token
from medtune.serve.targets import parse_targets

logger = logging.getLogger("medtune.serve")


def require_serve_extra() -> None:
    """``MissingExtraError`` (E500, naming ``pip install 'medtune[serve]'``) unless FastAPI and uvicorn import."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise MissingExtraError("medtune serve", "serve") from None


def _bind(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise ServiceError("E630", f"--port must lie in [0, 65535], not {port}", fix="e.g. --port 8000 (0: any free port)")
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host.strip("[]")).version == 6 else socket.AF_INET
    except ValueError:
        family = socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as err:
        sock.close()
        raise ServiceError("E630", f"cannot listen on {host}:{port} ({err.strerror or type(err).__name__})",
                           fix="choose another --port (0 picks a free one) or stop what listens there") from None
    sock.set_inheritable(True)
    return sock


def _log_config(log_level: str) -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["medtune"] = {"handlers": ["default"], "level": log_level.upper(), "propagate": False}
    config["loggers"]["uvicorn.access"] = {"handlers": [], "level": "CRITICAL", "propagate": False}
    return config


def serve(targets: List[str], host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          token_file: str | Path | None = None, *, settings: ServeSettings | None = None,
          log_level: str = "info", kb: str | Path | None = None) -> None:
    """Serve pipelines and models over HTTP until SIGTERM or Ctrl-C (see the module docstring)."""
    require_serve_extra()
    settings = (settings or ServeSettings()).check()
    if workers < 1:
        raise ServiceError("E630", f"--workers must be 1 or more, not {workers}", fix="e.g. --workers 1")
    if log_level.lower() not in ("critical", "error", "warning", "info", "debug"):
        raise ServiceError("E630", f"unknown --log-level '{log_level}'", fix="use critical, error, warning, info or debug")
    token = load_token(token_file)
    check_host(host, token)
    specs = parse_targets(list(targets)) if targets or kb is None else []
    if kb is not None:
        from medtune.retrieval.kb import read_manifest, resolve_kb
        from medtune.retrieval.settings import require_retrieval_extra

        require_retrieval_extra("medtune serve --kb")
        kb = resolve_kb(kb).resolve()
        read_manifest(kb)  # a ModelError (E400) now, before the port opens, when it is not a knowledge base

    import uvicorn

    from medtune.serve.app import SPEC_ENV, create_app

    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    common = dict(log_config=_log_config(log_level), log_level=log_level.lower(), access_log=False,
                  lifespan="on", server_header=False, timeout_graceful_shutdown=int(settings.timeout_s) + 5,
                  proxy_headers=False)
    logging.config.dictConfig(common["log_config"])
    url_host = f"[{host}]" if ":" in host else host
    served = [s.name for s in specs] + ([f"knowledge base {Path(kb).name}"] if kb is not None else [])
    logger.info("medtune serve: listening on http://%s:%d/ (%s; token %s; %d worker%s)", url_host, bound,
                ", ".join(served), "required" if token else "not required", workers,
                "" if workers == 1 else "s")
    try:
        if workers == 1:
            app = create_app(specs, settings, token=token, kb=kb)
            server = _server_class()(uvicorn.Config(app, **common))
            server.run(sockets=[sock])
        else:
            from uvicorn.supervisors import Multiprocess

            os.environ[SPEC_ENV] = json.dumps({
                "targets": [[s.name, str(s.path), s.kind] for s in specs], "settings": settings.to_dict(),
                "kb": str(kb) if kb is not None else None,
                "token_file": str(Path(token_file).resolve()) if token_file is not None else None})
            config = uvicorn.Config("medtune.serve.app:app_from_environment", factory=True, workers=workers, **common)
            Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
    logger.info("medtune serve: stopped")


def _server_class() -> type:
    import uvicorn

    class _Server(uvicorn.Server):
        """uvicorn's server, except that once a signal has stopped it gracefully, it does not raise that
        signal again (uvicorn does, so that the default handler exits; the medtune CLI's handler would
        report the clean stop as an interruption)."""

        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return _Server


def serve_command(
    targets: Optional[List[str]] = typer.Argument(None, help="pipeline YAMLs and model directories, each as PATH or "
                                                             "NAME=PATH (default name: the file's stem or the "
                                                             "directory's name); optional with --kb"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on; a non-loopback address needs a token"),
    port: int = typer.Option(8000, "--port", help="port (0: any free port, printed at start)"),
    workers: int = typer.Option(1, "--workers", help="processes, each with its own copy of the models"),
    token_file: Optional[Path] = typer.Option(None, "--token-file",
                                              help=f"file holding the bearer token (else ${TOKEN_ENV})"),
    mode: str = typer.Option("auto", "--mode", help="inference mode of model directories: auto, fp32, bf16, "
                                                    "onnx, onnx-int8 (pipelines set theirs per component)"),
    batch_size: int = typer.Option(16, "--batch-size", help="most documents in one batch"),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", help="longest wait for a batch to fill"),
    max_batch_chars: int = typer.Option(8_000, "--max-batch-chars",
                                        help="most characters in one batch (small batches queue fairly on a "
                                             "CPU; raise it on a GPU)"),
    max_queue: int = typer.Option(1024, "--max-queue", help="most documents waiting per model (then 503)"),
    long_chars: int = typer.Option(10_000, "--long-chars", help="documents this long run on a lane of their own "
                                                               "(0: one lane)"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads per process (default: every core)"),
    model_workers: int = typer.Option(1, "--model-workers", help="batches run at once per model (e.g. 2 with "
                                                                 "--threads 1 on a busy 2-core machine)"),
    timeout: float = typer.Option(60.0, "--timeout", help="seconds a request may take (then 504)"),
    max_body_bytes: int = typer.Option(4 * 1024 * 1024, "--max-body-bytes", help="largest request body (then 413)"),
    max_documents: int = typer.Option(64, "--max-documents", help="most documents per request (then 413)"),
    max_chars: int = typer.Option(200_000, "--max-chars", help="most characters per document (then 413)"),
    cors_origin: Optional[List[str]] = typer.Option(None, "--cors-origin",
                                                    help="an origin allowed to call the API from a browser "
                                                         "(repeatable; CORS is off without it)"),
    log_level: str = typer.Option("info", "--log-level", help="critical, error, warning, info or debug"),
    kb: Optional[str] = typer.Option(None, "--kb", help="a knowledge-base directory (or name) answered at "
                                                        "POST /v1/ask (medtune kb build)"),
) -> None:
    """Serve pipelines and models over HTTP: POST /v1/analyze, GET /v1/models, a web page at /."""
    settings = ServeSettings(max_body_bytes=max_body_bytes, max_documents=max_documents, max_chars=max_chars,
                             batch_size=batch_size, max_wait_ms=max_wait_ms, max_batch_chars=max_batch_chars,
                             max_queue=max_queue, long_chars=long_chars, threads=threads,
                             model_workers=model_workers, timeout_s=timeout, mode=mode,
                             cors_origins=tuple(cors_origin or ()))
    serve(targets or [], host=host, port=port, workers=workers, token_file=token_file, settings=settings,
          log_level=log_level, kb=kb)
