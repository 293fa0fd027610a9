"""`medtune datasets ...` and `medtune link ...`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from medtune import datasets
from medtune.cli.app import datasets_app, link_app, setup_logging
from medtune.cli.options import check_count, check_output_dir, check_output_file
from medtune.data import resolve_documents
from medtune.fileutils import atomic_write
from medtune.linking import Linker, linking_report
from medtune.linking.config import LinkerConfig, build_linker


@datasets_app.command("list")
def datasets_list() -> None:
    """List the named corpora."""

    for spec in datasets.list_datasets():
        typer.echo(f"{spec.name:22s} {spec.task:15s} {spec.description}")


@datasets_app.command("info")
def datasets_info(name: str = typer.Argument(...)) -> None:
    """Splits, counts, licence and citation of a named corpus."""

    typer.echo(json.dumps(datasets.info(name), indent=2, ensure_ascii=False))


@link_app.command("build")
def link_build(
    config: Path = typer.Argument(..., help="linker YAML (see configs/linker-*.yaml)"),
    output: Path = typer.Option(..., "--output", "-o", help="linker directory to write"),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Build a linker: vocabulary, synonym dictionary learned from training mentions, dense index."""

    setup_logging(False)
    check_output_dir(output)
    summary = build_linker(LinkerConfig.from_yaml(config), output, overwrite=overwrite)
    typer.echo(json.dumps(summary))


@link_app.command("evaluate")
def link_evaluate(
    linker_dir: Path = typer.Argument(..., help="linker directory (from `medtune link build`)"),
    data: str = typer.Option(..., "--data", help="named corpus (e.g. ncbi-disease-linking) or file with gold ids"),
    split: str = typer.Option("test", "--split"),
    format: Optional[str] = typer.Option(None, "--format"),
    output: Optional[Path] = typer.Option(None, "--output", "-o"),
    errors: int = typer.Option(0, "--errors", help="list the first N wrong links"),
) -> None:
    """Accuracy@1 on gold mentions, with the vocabulary's ceiling."""

    setup_logging(False)
    check_count(errors, "--errors")
    check_output_file(output, example="linking.json")
    linker = Linker.load(linker_dir)
    docs, source = resolve_documents(data, split, format)
    result = linking_report(linker, docs, examples=errors)
    result = {"accuracy": result.pop("accuracy"), "ceiling": result.pop("ceiling"), **result,
              "linker": str(linker_dir), "data": source}
    if output is not None:
        with atomic_write(output) as handle:
            json.dump(result, handle, indent=2, ensure_ascii=False)
    typer.echo(json.dumps({k: v for k, v in result.items() if not isinstance(v, (dict, list))}, indent=2))
