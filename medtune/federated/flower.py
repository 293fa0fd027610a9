"""The Flower apps (Message API): a ``ClientApp`` per site and the ``ServerApp``; imports ``flwr``.

* ``ClientApp`` (:func:`make_client_app`; ``client_app`` for a SuperNode): on a ``train`` message it reads
  its own site's documents only (the file its SuperNode names in ``--node-config``: ``site-data``,
  ``site-name``, ``site-format``; in a simulation the site of its ``partition-id``), trains one round with
  :class:`~medtune.federated.local.SiteRun` from the weights received and replies with its weights, its
  document count (the FedAvg weight) and, under DP-SGD, the epsilon it has spent.
* ``ServerApp`` (:func:`make_server_app`; ``server_app`` for a deployment, which reads ``plan.json`` named by
  the run config key ``plan``): builds the global model from the config, runs FedAvg or FedProx for the
  rounds (every site trains in every round), then writes the model directory
  (:class:`~medtune.federated.server.GlobalModel`). What travels: the weights, the config and the label
  set down; weights, counts and epsilon up. Never documents.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import yaml
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg, FedProx

from medtune.config import RunConfig
from medtune.errors import ConfigError, MedtuneError
from medtune.federated.errors import FederationError, debug_requested
from medtune.federated.local import PrivateSiteRun, SiteRun, site_run
from medtune.federated.server import WEIGHTINGS, FederatedPlan, GlobalModel, federated_section
from medtune.fileutils import atomic_write

logger = logging.getLogger(__name__)

#: node_config keys a SuperNode sets for its site (deployment)
SITE_DATA, SITE_NAME, SITE_FORMAT = "site-data", "site-name", "site-format"
#: a site's training run, kept between rounds in the process that trains it (keyed by data and config)
_RUNS: dict[str, SiteRun | PrivateSiteRun] = {}


# --------------------------------------------------------------------------- client
def site_of(node_config: dict[str, Any], sites: list[tuple[str, str]] | None) -> tuple[str, str, str | None]:
    """(name, data file, format) of the site this node trains: from its node config, or in a simulation
    the site of its ``partition-id``."""
    if SITE_DATA in node_config:
        path = str(node_config[SITE_DATA])
        return str(node_config.get(SITE_NAME) or Path(path).stem), path, node_config.get(SITE_FORMAT) or None
    if sites is not None and "partition-id" in node_config:
        name, path = sites[int(node_config["partition-id"])]
        return name, path, "jsonl"
    raise ConfigError("this SuperNode names no site data", fix=f"start it with --node-config '{SITE_DATA}=\"PATH\" "
                      f"{SITE_NAME}=\"NAME\"' (the site's own training documents)")


def site_config(config_yaml: str, path: str, data_format: str | None) -> RunConfig:
    """The server's config with the data section replaced by the site's own training file."""
    raw = yaml.safe_load(config_yaml)
    raw["data"] = {"train": path, **({"format": data_format} if data_format else {})}
    raw["output_dir"] = None
    return RunConfig.from_dict(raw, source="federated site config")


def train_reply(msg: Message, context: Context, sites: list[tuple[str, str]] | None = None) -> Message:
    settings = msg.content["config"]
    name, path, data_format = site_of(dict(context.node_config), sites)
    rounds, server_round = int(settings["rounds"]), int(settings["server-round"])
    if server_round > rounds:
        raise ConfigError(f"round {server_round} of a run planned for {rounds}: the site's privacy plan and "
                          "steps are fixed for the planned rounds", fix="start a new run with more --rounds")
    key = hashlib.sha256("\n".join([path, str(settings["medtune-config"]), str(settings["meta"]),
                                    str(settings["local-epochs"]), str(rounds)]).encode()).hexdigest()
    if key not in _RUNS:
        config = site_config(str(settings["medtune-config"]), path, data_format)
        _RUNS[key] = site_run(config, json.loads(str(settings["meta"])), rounds=rounds,
                              local_epochs=float(settings["local-epochs"]))
    run = _RUNS[key]
    state = msg.content["arrays"].to_torch_state_dict()
    mu = float(settings.get("proximal-mu", 0.0) or 0.0)
    new = run.train_round(state, seed=run.config.training.seed + server_round, mu=mu)
    report = run.privacy_report(server_round)
    site = {"name": name, "documents": run.documents, "examples": run.examples, "steps": run.round_steps()}
    content = RecordDict({
        "arrays": ArrayRecord(new),
        # the FedAvg weights: the server averages by one of them (``--weighting``, WEIGHTINGS)
        "metrics": MetricRecord({"num-documents": run.documents, "num-examples": run.examples}),
        "site": ConfigRecord({"summary": json.dumps({**site, **({"privacy": report} if report else {})})}),
    })
    return Message(content=content, reply_to=msg)


def make_client_app(sites: list[tuple[str, str]] | None = None) -> ClientApp:
    """A ClientApp; ``sites`` (name, file) by partition id in a simulation, None for a SuperNode."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return train_reply(msg, context, sites)

    return app


# --------------------------------------------------------------------------- server
def make_strategy(plan: FederatedPlan, seen: dict[str, dict[str, Any]]) -> FedAvg:
    """FedAvg or FedProx over every site in every round, weighted by documents or training examples
    (``plan.weighting``); a round in which a site fails stops the run (FederationError) rather than
    averaging fewer sites."""
    base: type[FedAvg] = FedProx if plan.strategy == "fedprox" else FedAvg
    kwargs: dict[str, Any] = {"proximal_mu": plan.mu} if plan.strategy == "fedprox" else {}

    class Strategy(base):  # type: ignore[valid-type, misc]
        def aggregate_train(self, server_round: int, replies: Any) -> Any:
            replies = list(replies)
            failed = [m for m in replies if m.has_error()]
            if failed or len(replies) < plan.sites:
                reasons = "; ".join(sorted({str(m.error.reason)[:300] for m in failed}))
                raise FederationError(f"round {server_round}: {len(replies) - len(failed)} of {plan.sites} sites "
                                      f"replied{': ' + reasons if reasons else ''}",
                                      fix="see the site's log; fix its data or config and run again")
            for m in replies:
                summary = json.loads(str(m.content["site"]["summary"]))
                seen[summary["name"]] = summary
            return super().aggregate_train(server_round, replies)

    return Strategy(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=plan.sites,
                    min_evaluate_nodes=0, min_available_nodes=plan.sites,
                    weighted_by_key=WEIGHTINGS[plan.weighting], **kwargs)


def site_summaries(seen: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for name, s in seen.items():
        row = {"name": name, "documents": s["documents"], "examples": s["examples"], "steps_per_round": s["steps"]}
        if s.get("privacy"):
            row["privacy"] = s["privacy"]
        out.append(row)
    return out


def run_server(grid: Grid, plan: FederatedPlan) -> dict[str, Any]:
    """The ServerApp's work: global model, rounds, model directory; returns metrics.json's content."""
    started = time.perf_counter()
    config = plan.config
    out = Path(plan.output)
    if out.exists() and (out / "config.json").exists() and not plan.overwrite:
        raise ConfigError(f"--output {out} already holds a model", fix="pass --overwrite, or another --output")
    model = GlobalModel(config)
    seen: dict[str, dict[str, Any]] = {}
    strategy = make_strategy(plan, seen)
    train_config = ConfigRecord({"medtune-config": config.to_yaml(), "meta": json.dumps(model.meta),
                                 "rounds": plan.rounds, "local-epochs": float(plan.local_epochs)})
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(model.state()), num_rounds=plan.rounds,
                            train_config=train_config)
    if result.arrays is None or len(seen) < plan.sites:
        raise FederationError(f"the run ended with {len(seen)} of {plan.sites} sites heard from",
                              fix="see the sites' logs and run again")
    section = federated_section(plan, site_summaries(seen), started)
    return model.finish(result.arrays.to_torch_state_dict(), out, section, time.perf_counter() - started,
                        overwrite=plan.overwrite)


def make_server_app(plan: FederatedPlan | None = None, outcome: dict[str, Any] | None = None) -> ServerApp:
    """A ServerApp for ``plan`` (None: read ``plan.json`` named by the run config's ``plan``). Its outcome
    (metrics, or the error's code and message) goes to ``outcome`` and, in a deployment, ``outcome.json``
    beside the plan: a ServerApp process has no other way back to the command."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        plan_path = None if plan is not None else Path(str(context.run_config["plan"]))
        result: dict[str, Any]
        try:
            result = {"metrics": run_server(grid, plan or FederatedPlan.from_file(plan_path))}
        except MedtuneError as err:
            result = {"error": {"class": type(err).__name__, "code": err.code, "message": err.message,
                                "fix": err.fix}}
        except Exception as err:
            logger.error("federated server failed: %s", type(err).__name__, exc_info=debug_requested())
            result = {"error": {"class": "InternalError", "code": "E900", "message": f"server failed "
                                f"({type(err).__name__})", "fix": "see the log above"}}
        if outcome is not None:
            outcome.update(result)
        if plan_path is not None:
            # atomic: the command polls for outcome.json and reads it as soon as it exists
            with atomic_write(plan_path.parent / "outcome.json") as handle:
                handle.write(json.dumps(result, default=str))

    return app


client_app = make_client_app()
server_app = make_server_app()

