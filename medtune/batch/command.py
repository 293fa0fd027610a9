"""``medtune batch``: the typer command (registered by ``medtune.cli``) over :func:`run_batch`.

Kept light to import: ``medtune --help`` must not load torch, so the library is imported when the
command runs, as every other command of the CLI does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

BATCH_HELP = """Annotate a large input with a pipeline or a model, shard by shard, into OUT_DIR.

INPUT is a JSONL file (medtune documents; flat records with --text-column/--id-column), a Parquet
file (columns --text-column, default text, and --id-column, default id), a .txt file, or a folder of
them. Each shard of --shard-size documents becomes one output file (JSONL, or Parquet for Parquet
input), written atomically; --resume after an interrupt or a crash skips the shards already written.
--engine ray runs the shards on Ray actors (pip install 'medtune[ray]'), on the cluster at
--ray-address or on a local Ray.
"""


def batch_command(
    model: Path = typer.Argument(..., help="pipeline YAML (see pipelines/) or model directory"),
    input: Path = typer.Option(..., "--input", "-i", help="notes.jsonl, notes.parquet, a .txt file or a folder"),
    output: Path = typer.Option(..., "--output", "-o", help="folder of output shards (created when missing)"),
    engine: str = typer.Option("local", "--engine", help="local (this process) or ray"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address",
                                              help="an existing Ray cluster (e.g. auto, HOST:6379, ray://HOST:10001)"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Ray actors (default: one per cluster CPU "
                                                                   "over --cpus-per-worker)"),
    cpus_per_worker: float = typer.Option(1.0, "--cpus-per-worker", help="CPUs (and torch threads) per Ray actor"),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", help="GPUs per Ray actor (0: the actors "
                                                                          "run on CPUs)"),
    text_column: Optional[str] = typer.Option(None, "--text-column",
                                              help="text field of Parquet rows or flat JSONL records (default text)"),
    id_column: Optional[str] = typer.Option(None, "--id-column",
                                            help="id field of Parquet rows or flat JSONL records (default id)"),
    shard_size: int = typer.Option(1000, "--shard-size", help="documents per shard (per output file)"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="documents per model batch "
                                                                         "(default: the pipeline's, or 32)"),
    mode: Optional[str] = typer.Option(None, "--mode", help="inference mode of a model directory (auto, fp32, "
                                                             "bf16, onnx, onnx-int8); pipelines set it per component"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run in OUT_DIR"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar on stderr (off when it "
                                                                          "is not a terminal)"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log each shard (names and counts only)"),
) -> None:
    from medtune.batch.runner import run_batch

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    result = run_batch(model, input, output, engine=engine, ray_address=ray_address, workers=workers,
                       cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker, text_column=text_column,
                       id_column=id_column, shard_size=shard_size, batch_size=batch_size, mode=mode, resume=resume,
                       progress=progress)
    skipped = f" ({result.shards_skipped} already written)" if result.shards_skipped else ""
    typer.echo(f"{result.documents_written} documents written to {result.output_dir} in "
               f"{result.shards - result.shards_skipped} shards{skipped}, {result.seconds:.1f} s "
               f"({result.documents_per_second:.1f} documents/s, engine {result.engine})")


batch_command.__doc__ = BATCH_HELP
