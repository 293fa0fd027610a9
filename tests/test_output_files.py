"""Files left behind: interrupted writes, stale temporaries of dead processes, outputs of the wrong kind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtune.cli import app
from medtune.fileutils import _temp_prefix, atomic_dir, atomic_write, remove_stale_temporaries, stale_temporaries

runner = CliRunner()
PLANTED = "ZZPATIENT-SMITH-4711"


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def temporaries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


# ----------------------------------------------------------------------------- fileutils
def test_temporary_names_carry_host_and_pid(tmp_path):
    target = tmp_path / "out.jsonl"
    with atomic_write(target) as handle:
        [tmp] = temporaries(tmp_path)
        assert tmp.name.startswith(_temp_prefix(target)) and f"-{os.getpid()}." in tmp.name
        handle.write("x")
    assert target.read_text() == "x" and temporaries(tmp_path) == []


def test_stale_temporaries_of_dead_processes_are_removed_before_a_write(tmp_path):
    target = tmp_path / "out.jsonl"
    host_prefix = _temp_prefix(target).rsplit("-", 1)[0]  # .out.jsonl.HOST
    stale = tmp_path / f"{host_prefix}-{dead_pid()}.abcd1234.tmp"
    stale.write_text(PLANTED)
    stale_dir = tmp_path / f"{host_prefix}-{dead_pid()}.efgh5678.tmp"
    stale_dir.mkdir()
    (stale_dir / "part").write_text(PLANTED)
    live = tmp_path / f"{host_prefix}-{os.getppid()}.live0000.tmp"  # our parent is alive
    live.write_text("in progress")
    other_host = tmp_path / f".out.jsonl.zz-other-host-{dead_pid()}.abcd1234.tmp"
    other_host.write_text("another machine's")
    other_target = tmp_path / f".other.jsonl.{host_prefix.rsplit('.', 1)[1]}-{dead_pid()}.abcd1234.tmp"
    other_target.write_text("another output's")
    old_style = tmp_path / ".out.jsonl.k2j3h4g5.tmp"
    old_style.write_text("no pid")

    assert stale_temporaries(target) == sorted([stale, stale_dir])
    with atomic_write(target) as handle:
        handle.write("{}\n")
    assert not stale.exists() and not stale_dir.exists()
    assert live.exists() and other_host.exists() and other_target.exists() and old_style.exists()
    assert remove_stale_temporaries(target) == 0


def test_atomic_dir_cleans_stale_temporary_directories(tmp_path):
    target = tmp_path / "linker"
    host_prefix = _temp_prefix(target).rsplit("-", 1)[0]
    stale = tmp_path / f"{host_prefix}-{dead_pid()}.abcd1234.tmp"
    stale.mkdir()
    with atomic_dir(target) as staging:
        (staging / "a").write_text("a")
    assert (target / "a").exists() and not stale.exists()


def test_exception_mid_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write(PLANTED)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- real processes
def _big_input(path: Path, n: int = 6000) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            text = f"The patient {PLANTED} has breast cancer and fever, no cough. " * 3
            handle.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    return path


def _start_predict(model: Path, inputs: Path, output: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "medtune.cli", "predict", str(model), str(inputs),
                             "--output", str(output), "--batch-size", "4", "--mode", "fp32"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_partial_output(proc: subprocess.Popen, folder: Path, min_bytes: int = 4000) -> Path:
    deadline = time.time() + 120
    while time.time() < deadline:
        tmps = temporaries(folder)
        if tmps and tmps[0].stat().st_size >= min_bytes:
            return tmps[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("predict wrote no partial output in 120 s")


@pytest.mark.slow
def test_sigkill_mid_write_then_next_run_removes_the_temporary(tiny_ner_model, tmp_path):
    inputs = _big_input(tmp_path / "notes.jsonl")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = out_dir / "spans.jsonl"
    proc = _start_predict(tiny_ner_model, inputs, output)
    tmp = _wait_for_partial_output(proc, out_dir)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)  # reaped: its PID is no longer alive
    assert proc.returncode == -signal.SIGKILL
    assert tmp.exists() and PLANTED in tmp.read_text(encoding="utf-8")  # what a SIGKILL leaves
    assert f"-{proc.pid}." in tmp.name and not output.exists()

    small = tmp_path / "one.jsonl"
    small.write_text(json.dumps({"id": "a", "text": "She denies fever."}) + "\n", encoding="utf-8")
    result = run("predict", tiny_ner_model, small, "--output", output)
    assert result.exit_code == 0, result.output
    assert not tmp.exists() and temporaries(out_dir) == []
    assert [json.loads(x)["id"] for x in output.read_text().splitlines()] == ["a"]


@pytest.mark.slow
def test_sigterm_mid_write_exits_cleanly_and_removes_the_temporary(tiny_ner_model, tmp_path):
    inputs = _big_input(tmp_path / "notes.jsonl")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = out_dir / "spans.jsonl"
    proc = _start_predict(tiny_ner_model, inputs, output)
    _wait_for_partial_output(proc, out_dir)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "error: [E020] interrupted by SIGTERM" in stderr and "Traceback" not in stderr
    assert PLANTED not in stdout + stderr
    assert list(out_dir.iterdir()) == []


def test_sigterm_handler_is_restored_after_a_command(tiny_ner_model):
    before = signal.getsignal(signal.SIGTERM)
    assert run("predict", tiny_ner_model, "No fever.").exit_code == 0
    assert signal.getsignal(signal.SIGTERM) is before


# ----------------------------------------------------------------------------- outputs of the wrong kind
def test_output_that_is_a_directory_is_refused_before_any_work(tmp_path, monkeypatch):
    import medtune

    def no_load(*a, **k):
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(medtune, "load", no_load)
    (tmp_path / "out.jsonl").mkdir()
    for args in (["predict", tmp_path / "model", "No fever.", "--output", tmp_path / "out.jsonl"],
                 ["evaluate", tmp_path / "model", "--data", "x.jsonl", "--output", tmp_path / "out.jsonl"],
                 ["analyze", tmp_path / "p.yaml", "No fever.", "--output", tmp_path / "out.jsonl"],
                 ["analyze", tmp_path / "p.yaml", "No fever.", "--html", tmp_path / "out.jsonl"],
                 ["link", "evaluate", tmp_path / "linker", "--data", "x", "--output", tmp_path / "out.jsonl"]):
        result = run(*args)
        assert result.exit_code == 2, result.output
        assert "error: [E300]" in result.output and "is a directory" in result.output and "Fix:" in result.output


def test_output_below_a_file_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    result = run("predict", tmp_path / "model", "No fever.", "--output", tmp_path / "notes.txt" / "out.jsonl")
    assert result.exit_code == 2 and "[E300]" in result.output and "is a file, not a directory" in result.output


def test_directory_output_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("x")
    for args in (["train", tmp_path / "cfg.yaml", "--output", tmp_path / "taken"],
                 ["pretrain", "--data", "x", "--output", tmp_path / "taken"],
                 ["export", tmp_path / "model", "--output", tmp_path / "taken"],
                 ["link", "build", tmp_path / "cfg.yaml", "--output", tmp_path / "taken"]):
        result = run(*args)
        assert result.exit_code == 2, result.output
        assert "[E300]" in result.output and "is a file, and a directory is written there" in result.output
    assert (tmp_path / "taken").read_text() == "x"
