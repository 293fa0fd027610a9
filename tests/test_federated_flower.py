"""Federated fine-tuning with Flower (needs medtune[federated]; `make test` runs this file in .venv-federated):
FedAvg's weighting, a 2-site 2-round simulation through the CLI, SIGTERM during a simulation, and a
deployment on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from helpers import ner_docs
from typer.testing import CliRunner

if os.environ.get("CI") != "true":  # in CI (make test) Flower is installed: a missing flwr fails there
    pytest.importorskip("flwr", reason="needs medtune[federated] (make federated)")

from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

import medtune
from medtune.cli import app
from medtune.config import RunConfig
from medtune.federated import federate
from medtune.federated.errors import FederationError
from medtune.federated.flower import make_strategy
from medtune.federated.server import FederatedPlan, GlobalModel
from medtune.io.jsonl import write_jsonl

SECRET = "Zyxwvut"  # a word only in the sites' documents: it must never reach the model directory


def _sites(tmp_path):
    docs_a, docs_b = ner_docs(6, prefix="a"), ner_docs(3, prefix="b")
    docs_a[0].text = docs_a[0].text + " " + SECRET
    write_jsonl(docs_a, tmp_path / "north.jsonl")
    write_jsonl(docs_b, tmp_path / "south.jsonl")
    write_jsonl(ner_docs(3, prefix="t"), tmp_path / "test.jsonl")
    return f"{tmp_path / 'north.jsonl'},{tmp_path / 'south.jsonl'}"


def _config(tiny_model_dir, tmp_path) -> RunConfig:
    return RunConfig.from_dict({
        "task": "ner", "base_model": str(tiny_model_dir),
        "data": {"train": str(tmp_path / "test.jsonl"), "test": str(tmp_path / "test.jsonl"), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8},
        "training": {"batch_size": 2, "learning_rate": 5e-3, "warmup_ratio": 0.0, "progress_bar": False,
                     "bf16": "false", "seed": 3},
    })


def _plan(sites: int = 2, strategy: str = "fedavg", weighting: str = "documents") -> FederatedPlan:
    return FederatedPlan(config_yaml="", output="", rounds=1, local_epochs=1.0, strategy=strategy, mu=0.1,
                         sites=sites, mode="simulation", weighting=weighting)


class _Reply:
    """A site's reply as the strategy reads it (a Message needs a running Flower task to be built)."""

    def __init__(self, value: float, docs: int, name: str, examples: int | None = None) -> None:
        examples = docs if examples is None else examples
        self.content = RecordDict({
            "arrays": ArrayRecord({"w": torch.full((3,), value)}),
            "metrics": MetricRecord({"num-documents": docs, "num-examples": examples}),
            "site": ConfigRecord({"summary": json.dumps({"name": name, "documents": docs, "examples": examples,
                                                         "steps": 1})})})

    def has_error(self) -> bool:
        return False


def test_fedavg_weights_sites_by_their_document_counts():
    seen: dict = {}
    arrays, _ = make_strategy(_plan(), seen).aggregate_train(1, [_Reply(1.0, 30, "a"), _Reply(4.0, 10, "b")])
    np.testing.assert_allclose(arrays["w"].numpy(), np.full(3, (1.0 * 30 + 4.0 * 10) / 40))
    assert sorted(seen) == ["a", "b"] and seen["a"]["documents"] == 30
    with pytest.raises(FederationError, match="1 of 2 sites replied"):
        make_strategy(_plan(), {}).aggregate_train(1, [_Reply(1.0, 30, "a")])


def test_fedavg_can_weight_sites_by_their_training_examples():
    """Abstracts against sentences: 30 documents in 90 windows, 60 short documents in 60 windows."""
    replies = [_Reply(1.0, 30, "abstracts", examples=90), _Reply(4.0, 60, "sentences", examples=60)]
    by_docs, _ = make_strategy(_plan(), {}).aggregate_train(1, replies)
    by_examples, _ = make_strategy(_plan(weighting="examples"), {}).aggregate_train(1, replies)
    np.testing.assert_allclose(by_docs["w"].numpy(), np.full(3, (1.0 * 30 + 4.0 * 60) / 90))
    np.testing.assert_allclose(by_examples["w"].numpy(), np.full(3, (1.0 * 90 + 4.0 * 60) / 150))


def test_fedprox_is_flowers_strategy_with_the_plans_mu():
    from flwr.serverapp.strategy import FedAvg, FedProx

    prox, avg = make_strategy(_plan(strategy="fedprox"), {}), make_strategy(_plan(), {})
    assert isinstance(prox, FedProx) and prox.proximal_mu == 0.1  # sent to every site as "proximal-mu"
    assert isinstance(avg, FedAvg) and not isinstance(avg, FedProx)
    assert (avg.min_train_nodes, avg.min_available_nodes, avg.fraction_train) == (2, 2, 1.0)


def test_a_two_site_two_round_simulation_writes_a_model_that_loads(tiny_model_dir, tmp_path):
    sites = _sites(tmp_path)
    config = _config(tiny_model_dir, tmp_path)
    (tmp_path / "fed.yaml").write_text(config.to_yaml(), encoding="utf-8")
    out = tmp_path / "model"
    run = CliRunner().invoke(app, ["federate", str(tmp_path / "fed.yaml"), "--sites", sites, "--rounds", "2",
                                   "--output", str(out)], catch_exceptions=False)
    assert run.exit_code == 0, run.output
    assert "site north: 6 documents" in run.output and "site south: 3 documents" in run.output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    section = metrics["federated"]
    assert (section["rounds"], section["strategy"], section["mode"]) == (2, "fedavg", "simulation")
    assert section["weighting"] == "documents per site"
    assert [(s["name"], s["documents"]) for s in section["sites"]] == [("north", 6), ("south", 3)]
    assert "test" in metrics and metrics["train"]["documents"] == 9
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "## Federated training" in card and "| north | 6 |" in card
    for name in os.listdir(out):
        if (out / name).is_file() and name != "model.safetensors":
            assert SECRET.lower() not in (out / name).read_text(encoding="utf-8", errors="ignore").lower()
    model = medtune.load(out)
    start = GlobalModel(RunConfig.from_yaml(out / "medtune_config.yaml")).state()
    trained = model.model.state_dict()
    moved = sum(float((trained[k].float() - start[k].float()).abs().sum()) for k in start)
    assert moved > 0, "the federated model is the starting model"
    assert model("The patient has breast cancer.").text == "The patient has breast cancer."  # runs like any model
    again = CliRunner().invoke(app, ["federate", str(tmp_path / "fed.yaml"), "--sites", sites, "--output", str(out)])
    assert again.exit_code == 2 and "already holds a model" in again.output


def test_deployment_mode_on_loopback(tiny_model_dir, tmp_path):
    """A SuperLink and one SuperNode per site as separate processes, one round (the hospitals' recipe)."""
    result = federate(_config(tiny_model_dir, tmp_path), _sites(tmp_path), tmp_path / "model", rounds=1,
                      mode="deployment", strategy="fedprox", mu=0.01, timeout_s=500)
    section = result.metrics["federated"]
    assert section["mode"] == "deployment" and section["strategy"] == "fedprox" and section["proximal_mu"] == 0.01
    assert [(s["name"], s["documents"]) for s in section["sites"]] == [("north", 6), ("south", 3)]
    assert medtune.load(tmp_path / "model")("She denies cough.").id == "doc-0"


def test_sigterm_during_a_simulation_stops_it_and_removes_the_site_documents(tiny_model_dir, tmp_path):
    """Ray replaces the SIGTERM handler when Flower starts it; the run must still stop with [E020] (not start
    the simulation again), and the private folder of site documents must go."""
    sites = _sites(tmp_path)
    (tmp_path / "fed.yaml").write_text(_config(tiny_model_dir, tmp_path).to_yaml(), encoding="utf-8")
    private = tmp_path / "tmp"
    private.mkdir()
    env = {**os.environ, "TMPDIR": str(private), "RAY_TMPDIR": os.environ.get("RAY_TMPDIR", "/tmp"),
           "HF_HUB_OFFLINE": "1"}  # Ray's sockets stay under a short path
    proc = subprocess.Popen([sys.executable, "-m", "medtune.cli", "federate", str(tmp_path / "fed.yaml"), "--sites",
                             sites, "--rounds", "500", "--output", str(tmp_path / "model")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    deadline = time.time() + 240
    while not any("[ROUND 2/" in line for line in lines) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "".join(lines)[-3000:]
    assert list(private.glob("medtune-federate-*")), "the site folder is where the test looks for it"
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    reader.join(timeout=10)
    out = "".join(lines)
    # 143 from the CLI; Ray's core worker (C++) may then abort the interpreter's exit: SIGABRT, after the
    # clean-up and the error line (Ray 2.55), so either is a stop, and neither is a success or a retry
    assert proc.returncode in (143, -signal.SIGABRT), out[-3000:]
    assert "[E020]" in out and "starting it again" not in out
    assert not list(private.glob("medtune-federate-*")) and not (tmp_path / "model" / "config.json").exists()
