"""Deployment mode on loopback: a SuperLink and one SuperNode per site as separate processes, then ``flwr run``.

This is the hospitals' recipe (docs/federated.md) played on one machine: every process is started from this
environment's Flower executables, listens on 127.0.0.1 only (free ports, chosen here), and keeps its state
in the run's private temporary folder (the SuperLink's database too: it grows by the model's size every
round). Each SuperNode names its own site's file in ``--node-config``; the ServerApp (started by the
SuperLink's SuperExec) reads ``plan.json`` and writes ``outcome.json`` beside it. Every process is stopped,
with its children, when the run ends or fails. TLS is off (``--insecure``) because nothing leaves loopback;
a real deployment uses TLS certificates and SuperNode authentication (see docs/federated.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medtune.federated.errors import FederationError
from medtune.federated.server import FederatedPlan
from medtune.fileutils import atomic_write

LOOPBACK = "127.0.0.1"
APP_TOML = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "medtune-federated-app"
version = "1.0.0"
dependencies = []

[tool.flwr.app]
publisher = "medtune"

[tool.flwr.app.components]
serverapp = "medtune.federated.flower:server_app"
clientapp = "medtune.federated.flower:client_app"

[tool.flwr.app.config]
plan = ""
"""
FEDERATION = "medtune-loopback"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def executable(name: str) -> str:
    """A Flower executable of this environment (beside its python)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FederationError(f"{name} is not installed beside {sys.executable}",
                              fix="install medtune[federated] in this environment (`make federated`)")
    return str(path)


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise FederationError(f"the {what} exited with code {process.returncode} before it listened",
                                  fix="see its log (rerun with --verbose); is the port taken?")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1.0):
            return
        time.sleep(0.3)
    raise FederationError(f"the {what} did not listen on {LOOPBACK}:{port} within {timeout_s:.0f} s",
                          fix="the machine may be overloaded; run again")


class Processes:
    """Started processes, each in its own session; :meth:`stop_all` ends each one's group (its children)."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs, self.env = logs, env
        self.started: list[tuple[str, subprocess.Popen]] = []
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, args: list[str], cwd: Path) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed when the process is stopped
        process = subprocess.Popen(args, cwd=cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        process._medtune_log = log  # type: ignore[attr-defined]
        self.started.append((name, process))
        return process

    def stop_all(self) -> None:
        for _, process in reversed(self.started):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGTERM)
        for _, process in reversed(self.started):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)
            with contextlib.suppress(ProcessLookupError, PermissionError):  # what is left of its group
                os.killpg(process.pid, signal.SIGKILL)
            process._medtune_log.close()  # type: ignore[attr-defined]

    def dead(self) -> list[str]:
        return [name for name, p in self.started if p.poll() is not None]


@contextlib.contextmanager
def federation(plan: FederatedPlan, table: list[tuple[str, str]], work: Path) -> Iterator[tuple[Processes, dict[str, str], int]]:
    """A SuperLink and one SuperNode per site, on loopback, for the length of the block."""
    home = work / "flwr-home"
    home.mkdir(parents=True, exist_ok=True)
    bin_dir = str(Path(sys.executable).parent)  # the SuperLink and SuperNodes start flower-superexec by name
    env = {**os.environ, "FLWR_HOME": str(home), "PYTHONUNBUFFERED": "1",
           "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}
    procs = Processes(work / "logs", env)
    try:
        link = free_port()
        (home / "config.toml").write_text(f'[superlink]\ndefault = "{FEDERATION}"\n\n[superlink.{FEDERATION}]\n'
                                          f'address = "{LOOPBACK}:{link}"\ninsecure = true\n', encoding="utf-8")
        superlink = procs.start("superlink", [
            executable("flower-superlink"), "--insecure", "--host", LOOPBACK, "--port", str(link),
            "--database", str(work / "superlink.db"), "--disable-runtime-dependency-installation"], work)
        wait_for_port(link, superlink, "SuperLink")
        for k, (name, path) in enumerate(table):
            node_config = f'site-name="{_toml_text(name)}" site-data="{_toml_text(path)}" site-format="jsonl"'
            procs.start(f"supernode-{k + 1}", [
                executable("flower-supernode"), "--insecure", "--superlink", f"{LOOPBACK}:{link}",
                "--host", LOOPBACK, "--port", str(free_port()), "--node-config", node_config], work)
        yield procs, env, link
    finally:
        procs.stop_all()


def _toml_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def deploy(plan: FederatedPlan, table: list[tuple[str, str]], work: Path, *, timeout_s: float) -> dict[str, Any]:
    """Run ``plan`` on a loopback federation; the ServerApp's outcome (metrics, or its error)."""
    app = work / "app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "pyproject.toml").write_text(APP_TOML, encoding="utf-8")
    plan_path = work / "plan.json"
    with atomic_write(plan_path) as handle:  # the ServerApp process reads it
        handle.write(plan.to_json())
    outcome_path = work / "outcome.json"
    with federation(plan, table, work) as (procs, _env, _link):
        run = procs.start("flwr-run", [executable("flwr"), "run", str(app), FEDERATION, "--stream",
                                       "--run-config", f'plan="{_toml_text(str(plan_path))}"'], work)
        try:
            wait_for_outcome(procs, run, outcome_path, timeout_s)
        finally:
            if verbose_logs():  # Flower's own logs (no documents travel through them)
                for log in sorted((work / "logs").glob("*.log")):
                    tail = log.read_text(encoding="utf-8", errors="replace")[-4000:]
                    sys.stderr.write(f"--- {log.name}\n{tail}\n")
    return json.loads(outcome_path.read_text(encoding="utf-8"))


def wait_for_outcome(procs: Processes, run: subprocess.Popen, outcome_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not outcome_path.exists():
        if [n for n in procs.dead() if n != "flwr-run"] or run.poll() not in (None, 0):
            dead = ", ".join(n for n in procs.dead())
            raise FederationError(f"{dead} exited before the run finished",
                                  fix="rerun with MEDTUNE_FEDERATED_LOGS=1 for the processes' logs")
        if run.poll() == 0:
            time.sleep(2.0)  # the ServerApp writes its outcome before the run is reported finished
            if not outcome_path.exists():
                raise FederationError("flwr run finished without an outcome from the ServerApp",
                                      fix="rerun with MEDTUNE_FEDERATED_LOGS=1 for Flower's log")
        if time.monotonic() > deadline:
            raise FederationError(f"the run did not finish within {timeout_s:.0f} s", fix="run again")
        time.sleep(0.5)


def verbose_logs() -> bool:
    return os.environ.get("MEDTUNE_FEDERATED_LOGS", "").strip().lower() in ("1", "true", "yes", "on")
