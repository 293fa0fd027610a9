"""SIGTERM during a Flower simulation: Ray's handler is chained with the command's, never a retry (no Ray
needed: a stand-in for ``ray._private.utils``; tests/test_federated_flower.py stops a real simulation)."""

from __future__ import annotations

import os
import signal
import sys
import types

import pytest

from medtune.federated.signals import EXIT_SIGTERM, SigtermWatch, chained, sigterm_stops_the_run


class _Stopped(KeyboardInterrupt):
    pass


def _ray_handler(calls: list):
    def handler(signum, frame):
        calls.append(signum)  # Ray stops its processes here
        sys.exit(1)

    return handler


def _raise_stopped(signum, frame):
    raise _Stopped()


def test_rays_clean_up_runs_then_the_handler_from_before():
    calls: list = []
    watch = SigtermWatch()
    with pytest.raises(_Stopped):
        chained(_ray_handler(calls), _raise_stopped, watch)(signal.SIGTERM, None)
    assert calls == [signal.SIGTERM] and watch.received


def test_without_a_handler_before_it_stops_through_every_finally():
    watch = SigtermWatch()
    with pytest.raises(SystemExit) as stop:
        chained(_ray_handler([]), signal.SIG_DFL, watch)(signal.SIGTERM, None)
    assert stop.value.code == EXIT_SIGTERM == 143 and watch.received
    assert chained(_ray_handler([]), signal.SIG_IGN, SigtermWatch())(signal.SIGTERM, None) is None


def test_a_handler_ray_sets_in_the_block_is_chained_and_everything_is_restored(monkeypatch):
    fake = types.ModuleType("ray._private.utils")
    fake.set_sigterm_handler = lambda handler: signal.signal(signal.SIGTERM, handler)  # as Ray's own does
    original = fake.set_sigterm_handler
    package = types.ModuleType("ray._private")
    package.utils = fake
    monkeypatch.setitem(sys.modules, "ray", types.ModuleType("ray"))
    monkeypatch.setitem(sys.modules, "ray._private", package)
    monkeypatch.setitem(sys.modules, "ray._private.utils", fake)
    previous = signal.signal(signal.SIGTERM, _raise_stopped)  # the command's handler (the CLI's, say)
    calls: list = []
    try:
        with pytest.raises(_Stopped):
            with sigterm_stops_the_run() as watch:
                fake.set_sigterm_handler(_ray_handler(calls))  # what ray.init does inside Flower
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(100):  # the handler runs between bytecodes of the main thread
                    pass
        assert calls == [signal.SIGTERM] and watch.received
        assert signal.getsignal(signal.SIGTERM) is _raise_stopped and fake.set_sigterm_handler is original
    finally:
        signal.signal(signal.SIGTERM, previous)
