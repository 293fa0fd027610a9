"""A real ``medtune serve`` process for the serve tests: started on a free loopback port (``--port 0``,
the port read from its log), its log kept in a file, stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
# the serve command under the medtune CLI's own command group (which turns SIGTERM into an interrupt)
SCRIPT = """
import sys, typer
import medtune.cli as cli
from medtune.serve.command import serve_command
app = typer.Typer(cls=getattr(cli, "_MedtuneGroup", None), add_completion=False)
app.command("serve")(serve_command)
@app.command("noop")  # a second command keeps "serve" a sub-command, as in medtune/cli.py
def noop() -> None: ...
app(["serve", *sys.argv[1:]], prog_name="medtune")
"""
LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/")


class ServeProcess:
    def __init__(self, args: list[str], log_path: Path, token: str | None) -> None:
        env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        env.pop("MEDTUNE_API_TOKEN", None)
        if token is not None:
            env["MEDTUNE_API_TOKEN"] = token
        self.token = token
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-c", SCRIPT, *args, "--port", "0"], stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        self.port = self._wait_for_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def _wait_for_port(self, limit: float = 120.0) -> int:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            found = LISTENING.search(self.log())
            if found:
                return int(found.group(1))
            if self.proc.poll() is not None:
                raise AssertionError(f"medtune serve exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.1)
        self.proc.kill()
        raise AssertionError(f"medtune serve did not start:\n{self.log()}")

    def _wait_ready(self, limit: float = 120.0) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"medtune serve exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.2)
        raise AssertionError(f"medtune serve never became ready:\n{self.log()}")

    def request(self, method: str, path: str, body: dict | None = None, token: str | None = "default",
                ) -> tuple[int, dict]:
        token = self.token if token == "default" else token
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def terminate(self, limit: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(limit)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()
