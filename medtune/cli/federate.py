"""``medtune federate CONFIG --sites SPEC``: federated fine-tuning with Flower (``medtune.federated``)."""

from __future__ import annotations

from pathlib import Path

import typer

from medtune.cli.app import EXTRA, app, setup_logging
from medtune.cli.options import check_output_dir
from medtune.config import RunConfig, parse_overrides
from medtune.federated import federate as run_federated


@app.command(context_settings=EXTRA)
def federate(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="YAML run config (see configs/); its dev/test splits measure the result"),
    sites: str = typer.Option(..., "--sites", help="the sites: corpora or files joined by ',' (ncbi-disease,"
                              "bc5cdr-disease), or one split in shards (ncbi-disease:iid:3, "
                              "ncbi-disease:dirichlet:3:alpha=0.5); see docs/federated.md"),
    output: Path = typer.Option(..., "--output", "-o", help="model directory to write"),
    rounds: int = typer.Option(3, "--rounds", help="federated rounds (every site trains in every round)"),
    local_epochs: float = typer.Option(1.0, "--local-epochs", help="epochs over its own data a site trains per round"),
    strategy: str = typer.Option("fedavg", "--strategy", help="fedavg or fedprox"),
    mu: float = typer.Option(0.01, "--mu", help="FedProx: weight of the proximal term mu/2 ||w - w_global||^2"),
    mode: str = typer.Option("simulation", "--mode", help="simulation (all sites in this machine, Ray) or "
                             "deployment (a SuperLink and one SuperNode per site as processes on loopback)"),
    weighting: str = typer.Option("documents", "--weighting", help="FedAvg weight of a site: its training "
                                  "documents, or its training examples (windows; use it when the sites' "
                                  "documents differ in length, e.g. sentences against abstracts)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a model already in --output"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Fine-tune one model across sites with Flower: each site trains on its own documents, only weights
    travel. Extra options override config keys (--training.learning_rate 1e-4)."""
    setup_logging(verbose)
    check_output_dir(output)
    cfg = RunConfig.from_yaml(config, parse_overrides(list(ctx.args)))
    result = run_federated(cfg, sites, output, rounds=rounds, local_epochs=local_epochs, strategy=strategy, mu=mu,
                           mode=mode, overwrite=overwrite, weighting=weighting)
    section = result.metrics["federated"]
    typer.echo(f"model written to {result.output_dir} ({section['strategy']}, {section['rounds']} rounds, "
               f"{section['mode']})")
    for site in section["sites"]:
        eps = site.get("privacy", {}).get("epsilon_spent")
        typer.echo(f"site {site['name']}: {site['documents']} documents" + (f", epsilon {eps:.4f}" if eps else ""))
    for split in ("dev", "test"):
        if split in result.metrics:
            typer.echo(f"{split} f1: {result.metrics[split]['f1']:.4f}")
