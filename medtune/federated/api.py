"""``federate()``: fine-tune one model across sites with Flower, in a simulation or a loopback deployment.

1. the sites of ``--sites SPEC`` are loaded and split (``sites.py``), and each site's training documents are
   written to its own file in a private temporary folder (a site's client reads that file only);
2. the label set, when the config does not list it, is the union of the sites' label names (refused under
   ``privacy:``, where it must be in the config);
3. simulation (default): Flower's simulation runtime (Ray) runs the ServerApp and one ClientApp per site in
   this machine; deployment: a SuperLink and one SuperNode per site as separate processes on loopback, and
   ``flwr run`` (``deployment.py``);
4. the ServerApp writes the model directory; the temporary folder is removed whatever happens.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medtune import errors as medtune_errors
from medtune.config import RunConfig
from medtune.errors import ConfigError, MedtuneError
from medtune.federated.errors import FederationError, require_flwr
from medtune.federated.server import FederatedPlan, check_plan, check_task
from medtune.federated.signals import sigterm_stops_the_run
from medtune.federated.sites import Site, load_sites, write_site_files
from medtune.tasks import task_class

logger = logging.getLogger(__name__)
#: Ray's node start-up has a fixed 30 s limit, which an overloaded machine can miss: try again
SIMULATION_ATTEMPTS = 3


@dataclass
class FederatedResult:
    output_dir: Path
    metrics: dict[str, Any]


def with_labels(config: RunConfig, sites: list[Site]) -> RunConfig:
    """The config with ``model.labels`` filled in from the sites' label names when it has none."""
    if config.model.labels is not None:
        return config
    if config.privacy is not None:
        raise ConfigError("privacy: the label set would be read from the sites' documents, outside the "
                          "accountant", fix="list the labels in model.labels")
    pooled = [doc for site in sites for doc in site.docs]
    labels = task_class(config.task).meta_from_config(config, pooled)["labels"]
    raw = config.model_dump(mode="json")
    raw["model"]["labels"] = list(labels)
    return RunConfig.from_dict(raw, source="federated config")


def with_threads(config: RunConfig, actors: int) -> RunConfig:
    """Share the cores between the clients that train at once (when ``training.num_threads`` is not set)."""
    if config.training.num_threads is not None:
        return config
    raw = config.model_dump(mode="json")
    raw["training"]["num_threads"] = max(1, (os.cpu_count() or 1) // max(1, actors))
    return RunConfig.from_dict(raw, source="federated config")


def federate(config: RunConfig, sites: str, output: str | Path, *, rounds: int = 3, local_epochs: float = 1.0,
             strategy: str = "fedavg", mu: float = 0.01, mode: str = "simulation", overwrite: bool = False,
             weighting: str = "documents", timeout_s: float = 24 * 3600.0) -> FederatedResult:
    """Train ``config`` across the sites of ``sites`` (a SPEC, see ``medtune.federated.sites``) and write
    an ordinary model directory to ``output``."""
    out = Path(output)
    mu = mu if strategy == "fedprox" else 0.0
    check_task(config)
    check_plan(rounds, local_epochs, strategy, mu, mode, sites=2, weighting=weighting)
    if (out / "config.json").exists() and not overwrite:
        raise ConfigError(f"--output {out} already holds a model", fix="pass --overwrite, or another --output")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output {out} is a file", fix="give a directory")
    require_flwr()
    loaded = load_sites(sites, seed=config.training.seed)
    check_plan(rounds, local_epochs, strategy, mu, mode, sites=len(loaded), weighting=weighting)
    config = with_labels(config, loaded)
    actors = min(len(loaded), os.cpu_count() or 1) if mode == "simulation" else len(loaded)
    config = with_threads(config, actors)
    work = Path(tempfile.mkdtemp(prefix="medtune-federate-"))  # mode 0700: the sites' documents
    try:
        files = write_site_files(loaded, work / "sites")
        table = [(site.name, str(path.resolve())) for site, path in zip(loaded, files)]
        plan = FederatedPlan(config_yaml=config.to_yaml(), output=str(out.resolve()), rounds=rounds,
                             local_epochs=local_epochs, strategy=strategy, mu=mu, sites=len(loaded), mode=mode,
                             overwrite=overwrite, site_names=[s.name for s in loaded], weighting=weighting)
        if mode == "simulation":
            outcome = simulate(plan, table, actors)
        else:
            from medtune.federated.deployment import deploy

            outcome = deploy(plan, table, work, timeout_s=timeout_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if "error" in outcome:
        raise rebuilt_error(outcome["error"])
    return FederatedResult(out, outcome["metrics"])


def simulate(plan: FederatedPlan, table: list[tuple[str, str]], actors: int) -> dict[str, Any]:
    """Flower's simulation runtime: the ServerApp in this process, the ClientApps in Ray actors."""
    from flwr.simulation import run_simulation

    from medtune.federated.flower import make_client_app, make_server_app

    cpus = os.cpu_count() or 1
    backend = {"client_resources": {"num_cpus": max(1, cpus // actors)},
               "init_args": {"num_cpus": cpus, "include_dashboard": False, "log_to_driver": True}}
    for attempt in range(1, SIMULATION_ATTEMPTS + 1):
        outcome: dict[str, Any] = {}
        try:
            with sigterm_stops_the_run() as sigterm:
                run_simulation(server_app=make_server_app(plan, outcome), client_app=make_client_app(table),
                               num_supernodes=len(table), backend_config=backend)
        except (SystemExit, RuntimeError) as stop:  # Flower's runtime failing: sys.exit or "Simulation Runtime crashed"
            if sigterm.received:  # stopped, not failed: no second attempt
                raise
            if outcome:  # the server's own result (or error) came first
                break
            if attempt == SIMULATION_ATTEMPTS:
                why = f"exit code {stop.code}" if isinstance(stop, SystemExit) else type(stop).__name__
                raise FederationError(f"Flower's simulation runtime stopped ({why}) before the "
                                      "server finished, e.g. Ray could not start on an overloaded machine",
                                      fix="run again, or use --mode deployment") from None
            logger.warning("Flower's simulation runtime did not start (attempt %d of %d); starting it again",
                           attempt, SIMULATION_ATTEMPTS)
            continue
        break
    if not outcome:
        raise FederationError("the simulation ended without a result from the server",
                              fix="rerun with --verbose for Flower's log")
    return outcome


def rebuilt_error(error: dict[str, Any]) -> MedtuneError:
    """The server's error (raised in the ServerApp, perhaps in another process) as the same class and code."""
    cls = getattr(medtune_errors, str(error.get("class")), None)
    if not (isinstance(cls, type) and issubclass(cls, MedtuneError)) or error.get("class") == "MissingExtraError":
        cls = FederationError
    try:
        err = cls(str(error.get("message")), fix=error.get("fix"))
    except TypeError:
        err = FederationError(str(error.get("message")), fix=error.get("fix"))
    err.code = str(error.get("code") or err.code)
    err.args = (f"[{err.code}] {err.message}" + (f" Fix: {err.fix}" if err.fix else ""),)
    return err
