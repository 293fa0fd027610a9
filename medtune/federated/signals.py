"""SIGTERM during a Flower simulation: stop the run cleanly instead of retrying it.

``ray.init`` (called by Flower's simulation runtime) replaces the process' SIGTERM handler with its own,
which stops Ray's processes and calls ``sys.exit``. Left alone, that ``SystemExit`` reaches
:func:`medtune.federated.api.simulate`, which reads it as Flower's runtime failing to start and starts the
simulation again; and it bypasses the handler the command installed before (the CLI's, which stops with
``[E020]`` and exit code 143). :func:`sigterm_stops_the_run` chains the two while a simulation runs: Ray's
handler still stops Ray's processes, then the handler that was there before Ray runs (the CLI's raises a
``KeyboardInterrupt``; with none, ``SystemExit(143)``), and :attr:`SigtermWatch.received` tells
``simulate`` not to retry. Either way the ``finally`` blocks run, so the private folder with the sites'
documents is removed.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

EXIT_SIGTERM = 128 + signal.SIGTERM

Handler = Callable[[int, Any], Any]


@dataclass
class SigtermWatch:
    received: bool = False


def chained(ray_handler: Handler, before: Any, watch: SigtermWatch) -> Handler:
    """A SIGTERM handler: Ray's clean-up (its ``sys.exit`` swallowed), then ``before``'s own action."""

    def on_sigterm(signum: int, frame: Any) -> None:
        watch.received = True
        with contextlib.suppress(SystemExit):
            ray_handler(signum, frame)
        if callable(before):
            before(signum, frame)  # the CLI's handler raises KeyboardInterrupt
        if before == signal.SIG_IGN:
            return
        raise SystemExit(EXIT_SIGTERM)  # the default action is to stop: stop, but through every finally

    return on_sigterm


@contextlib.contextmanager
def sigterm_stops_the_run() -> Iterator[SigtermWatch]:
    """While the block runs, a SIGTERM handler Ray sets is chained with the one in place before (see the
    module's docstring); the handlers and Ray's function are restored afterwards."""
    watch = SigtermWatch()
    try:
        from ray._private import utils as ray_utils  # where ray.init and Ray's node set their handlers
    except ImportError:  # pragma: no cover - Flower's simulation extra always brings Ray
        yield watch
        return
    original = getattr(ray_utils, "set_sigterm_handler", None)
    if original is None or threading.current_thread() is not threading.main_thread():
        yield watch  # another Ray version: its own behaviour stays (simulate's retry is then the fallback)
        return
    before = signal.getsignal(signal.SIGTERM)

    def set_sigterm_handler(handler: Handler) -> None:
        original(chained(handler, before, watch))

    ray_utils.set_sigterm_handler = set_sigterm_handler
    try:
        yield watch
    finally:
        ray_utils.set_sigterm_handler = original
        signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)
