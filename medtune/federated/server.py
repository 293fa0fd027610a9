"""The server's side of a federated run, without Flower: the global model and the model directory at the end.

The server holds no site data. It builds the global model from the config alone (the task metadata comes
from ``model.labels``, which the coordinator fills in from the sites' label names when the config leaves it
out), sends its weights, and at the end writes an ordinary medtune model directory: the aggregated weights,
``medtune_config.yaml``, ``metrics.json`` (with a ``federated`` section: sites by name and document count,
rounds, strategy, and epsilon per site where DP-SGD ran) and the card, measured on the config's own dev and
test splits when it has them (the coordinator's evaluation data, never a site's).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from transformers import AutoTokenizer, set_seed

from medtune.config import RunConfig
from medtune.data import load_split, split_source
from medtune.errors import ConfigError, DataFormatError
from medtune.models.encoder import build_encoder, resolve_base_model
from medtune.runtime import cpu_name, default_threads, resolve_bf16
from medtune.tasks import task_class
from medtune.training.checks import check_max_length
from medtune.training.output import checkpoint_to_resume, tidied_on_failure, write_model_dir
from medtune.training.run import Prepared, TrainingRun, load_weights

STRATEGIES = ("fedavg", "fedprox")
MODES = ("simulation", "deployment")
#: FedAvg weightings: what a site's share of the average is proportional to, and the reply metric that holds it
WEIGHTINGS = {"documents": "num-documents", "examples": "num-examples"}


@dataclass
class FederatedPlan:
    """Everything the server needs, written to ``plan.json`` for a deployment's ServerApp process."""

    config_yaml: str
    output: str
    rounds: int
    local_epochs: float
    strategy: str
    mu: float
    sites: int
    mode: str
    overwrite: bool = False
    secure_aggregation: bool = False
    weighting: str = "documents"
    site_names: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_file(cls, path: str | Path) -> FederatedPlan:
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))

    @property
    def config(self) -> RunConfig:
        return RunConfig.from_dict(yaml.safe_load(self.config_yaml), source="federated plan")


def check_plan(rounds: int, local_epochs: float, strategy: str, mu: float, mode: str, sites: int,
               weighting: str = "documents") -> None:
    if rounds < 1:
        raise ConfigError(f"--rounds {rounds}", fix="run at least one round")
    if not local_epochs > 0:
        raise ConfigError(f"--local-epochs {local_epochs}", fix="train at least a fraction of an epoch (e.g. 1)")
    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy {strategy}", fix=f"one of {', '.join(STRATEGIES)}")
    if mode not in MODES:
        raise ConfigError(f"--mode {mode}", fix=f"one of {', '.join(MODES)}")
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"--weighting {weighting}", fix=f"one of {', '.join(WEIGHTINGS)}")
    if strategy == "fedprox" and not mu > 0:
        raise ConfigError(f"--mu {mu}: FedProx needs a positive proximal weight", fix="e.g. --mu 0.01")
    if sites < 2:
        raise ConfigError(f"--sites names {sites} site: a federation needs two or more",
                          fix="name several corpora, or split one (ncbi-disease:iid:3)")


WEIGHTING_TEXT = {"documents": "documents per site", "examples": "training examples per site"}


#: tasks ``medtune federate`` refuses, and why (checked before anything is loaded or Flower is imported)
UNSUPPORTED_TASKS = {
    "coding": (("the server builds the task metadata from no documents, so every code would be marked unseen "
                "(the model's `seen` buffer all zeros, sent to every site) and no site's round could train"),
               "train the coding model with `medtune train` on pooled data; federated coding is not supported yet"),
}


def check_task(config: RunConfig) -> None:
    """Refuse a task that cannot be trained federated (see ``UNSUPPORTED_TASKS``)."""
    if config.task in UNSUPPORTED_TASKS:
        why, fix = UNSUPPORTED_TASKS[config.task]
        raise ConfigError(f"task: {config.task} cannot be federated: {why}", fix=fix)


def global_meta(config: RunConfig) -> dict[str, Any]:
    """The task metadata from the config alone (the label set must be in ``model.labels``)."""
    cls = task_class(config.task)
    try:
        return cls.meta_from_config(config, [])
    except DataFormatError:
        raise ConfigError("the server holds no training data, so the label set must be in the config",
                          fix="list the labels in model.labels") from None


class GlobalModel:
    """The global model: tokenizer, task and weights, built from the config."""

    def __init__(self, config: RunConfig) -> None:
        check_task(config)  # a plan.json written by hand reaches the ServerApp without federate()
        self.config = config
        tc = config.training
        torch.set_num_threads(tc.num_threads or default_threads())
        set_seed(tc.seed)  # the head's first weights: every site starts from these
        self.base = resolve_base_model(config.base_model)
        self.tokenizer = AutoTokenizer.from_pretrained(self.base, trust_remote_code=False)
        if not getattr(self.tokenizer, "is_fast", False):
            raise ConfigError(f"base_model {config.base_model} has no fast tokenizer (tokenizer.json)",
                              fix="medtune needs character offsets from a fast tokenizer")
        self.meta = global_meta(config)
        self.task = task_class(config.task)(dict(self.meta), self.tokenizer)
        encoder = build_encoder(self.base)
        check_max_length(config.model.max_length, encoder.config, config.base_model)
        self.model: nn.Module = self.task.build_model(encoder)

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    def finish(self, state: dict[str, torch.Tensor], out: Path, federated: dict[str, Any], runtime_s: float,
               *, overwrite: bool) -> dict[str, Any]:
        """Load the aggregated weights, measure them on the config's dev/test splits, write the directory."""
        checkpoint_to_resume(out, resume=False, overwrite=overwrite)
        load_weights(self.model, state)
        self.model.eval()
        config, tc = self.config, self.config.training
        docs = {"train": [], **{s: load_split(config.data, s) or [] for s in ("dev", "test")}}
        device = torch.device("cpu")
        bf16 = resolve_bf16(tc.bf16, device)
        for split in ("dev", "test"):
            if docs[split]:
                self.task.check_documents(docs[split], source=split_source(config.data, split), training=False)
        prepared = Prepared(docs, self.tokenizer, self.task, self.base, device, bf16)
        if docs["dev"]:
            self.task.after_training(self.model, docs["dev"], batch_size=tc.eval_batch_size, device=device, bf16=bf16)
        metrics: dict[str, Any] = {"train": {
            "runtime_s": round(runtime_s, 2), "documents": sum(s["documents"] for s in federated["sites"]),
            "epochs": federated["rounds"] * federated["local_epochs"], "bf16": bf16, "cpu": cpu_name(), "threads": torch.get_num_threads()}}
        metrics.update(TrainingRun(config).evaluate(prepared, self.model))
        metrics["federated"] = federated
        with tidied_on_failure(out):
            write_model_dir(out, self.model, self.tokenizer, self.task, config, metrics)
        return metrics


def federated_section(plan: FederatedPlan, sites: list[dict[str, Any]], started: float) -> dict[str, Any]:
    """The ``federated`` section of metrics.json: names and counts, never text."""
    section: dict[str, Any] = {
        "framework": "Flower", "mode": plan.mode, "strategy": plan.strategy, "rounds": plan.rounds,
        "local_epochs": plan.local_epochs, "weighting": WEIGHTING_TEXT[plan.weighting],
        "secure_aggregation": plan.secure_aggregation,
        "sites": sorted(sites, key=lambda s: s["name"]), "runtime_s": round(time.perf_counter() - started, 2),
        "what_travels": "model weights, and each site's name and exact document, example and step counts "
                        "(and epsilon under DP-SGD); never documents",
    }
    if plan.config.privacy is not None:
        section["not_covered_by_dp"] = ("each site's exact document, example and step counts travel to the server "
                                        "in the clear and are published here and in the card; DP-SGD's epsilon "
                                        "covers what the weights reveal, not the counts")
    if plan.strategy == "fedprox":
        section["proximal_mu"] = plan.mu
    return section
