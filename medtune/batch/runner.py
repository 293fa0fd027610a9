"""``run_batch``: a pipeline or model over a large input, shard by shard, resumable, local or on Ray.

The driver checks the options and the model, plans the shards (:mod:`medtune.batch.shards`), prepares
the output folder (:mod:`medtune.batch.store`: the manifest, the temporaries a killed run left), and
hands the shards that are not done yet to an engine: ``local`` (this process,
:mod:`medtune.batch.engine`) or ``ray`` (actors on a Ray cluster, :mod:`medtune.batch.ray_engine`).
Both run the same :class:`~medtune.batch.engine.ShardAnnotator`, so their outputs are the same.
Logs and errors name shards, files, lines and counts, never note text.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from medtune.batch.engine import check_model, progress_bar, run_local
from medtune.batch.ray_engine import import_ray, run_ray
from medtune.batch.shards import plan_shards
from medtune.batch.store import finish_manifest, manifest_for, prepare_output, shard_done
from medtune.errors import ConfigError

logger = logging.getLogger(__name__)

ENGINES = ("local", "ray")
DEFAULT_SHARD_SIZE = 1000


@dataclass
class BatchResult:
    output_dir: Path
    engine: str
    shards: int  # in the plan
    shards_skipped: int  # done by an earlier run (--resume)
    documents: int  # in the plan
    documents_written: int  # by this run
    seconds: float

    @property
    def documents_per_second(self) -> float:
        return self.documents_written / self.seconds if self.seconds > 0 else 0.0


def _check_options(engine: str, ray_address: str | None, shard_size: int, batch_size: int | None,
                   workers: int | None, cpus_per_worker: float, gpus_per_worker: float) -> None:
    if engine not in ENGINES:
        raise ConfigError(f"unknown --engine '{engine}'" if engine.isidentifier() else "unknown --engine",
                          fix=f"use one of: {', '.join(ENGINES)}")
    if ray_address is not None and engine != "ray":
        raise ConfigError("--ray-address is for --engine ray", fix="add --engine ray, or drop --ray-address")
    if shard_size < 1:
        raise ConfigError(f"--shard-size must be 1 or more, not {shard_size}", fix="give --shard-size 1000 "
                                                                                   "(documents per output file)")
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size must be 1 or more, not {batch_size}", fix="give --batch-size 32")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be 1 or more, not {workers}", fix="give --workers N, or leave it out "
                                                                             "(one per CPU of the cluster)")
    if not cpus_per_worker > 0:
        raise ConfigError("--cpus-per-worker must be more than 0", fix="give --cpus-per-worker 1")
    if not gpus_per_worker >= 0:
        raise ConfigError("--gpus-per-worker must be 0 or more", fix="give --gpus-per-worker 1 (or 0.5 to share)")


def run_batch(model: str | Path, input: str | Path, output: str | Path, *, engine: str = "local",
              ray_address: str | None = None, workers: int | None = None, cpus_per_worker: float = 1.0,
              gpus_per_worker: float = 0.0, text_column: str | None = None, id_column: str | None = None,
              shard_size: int = DEFAULT_SHARD_SIZE, batch_size: int | None = None, mode: str | None = None,
              resume: bool = False, progress: bool = True, num_threads: int | None = None) -> BatchResult:
    """Annotate ``input`` (JSONL, Parquet, a .txt file or a folder of them) with ``model`` (a pipeline YAML
    or a model directory) into one output file per shard of ``shard_size`` documents under ``output``.

    ``resume=True`` continues a run that was interrupted (killed, even): shards already written are kept
    and skipped, the rest are written, each document exactly once. ``engine="ray"`` runs the shards on a
    Ray cluster (``ray_address``, or a local Ray) with ``workers`` actors of ``cpus_per_worker`` CPUs and
    ``gpus_per_worker`` GPUs.
    ``text_column`` / ``id_column`` name the fields of Parquet rows or flat JSONL records (JSONL without
    them is read as medtune documents). ``mode`` is the inference mode of a model directory.
    """
    _check_options(engine, ray_address, shard_size, batch_size, workers, cpus_per_worker, gpus_per_worker)
    if engine == "ray":
        import_ray()  # a missing extra is reported before any work
    check_model(model, mode)
    out = Path(output)
    start = time.perf_counter()
    plan = plan_shards(input, shard_size, text_column=text_column, id_column=id_column)
    manifest = manifest_for(plan, model=str(model), shard_size=shard_size, text_column=text_column,
                            id_column=id_column, mode=mode)
    prepare_output(out, manifest, resume=resume)
    pending = [s for s in plan.shards if not shard_done(out, s.output_name)]
    skipped = len(plan.shards) - len(pending)
    done = plan.documents - sum(s.count for s in pending)
    if plan.skipped_files:
        logger.warning("%d files of other types in %s were skipped", plan.skipped_files, input)
    if skipped:
        logger.info("--resume: %d of %d shards (%d documents) already written", skipped, len(plan.shards), done)
    with progress_bar(plan.documents, done, progress) as bar:
        if engine == "ray":
            written = run_ray(pending, out, model=str(model), batch_size=batch_size, mode=mode, bar=bar,
                              address=ray_address, workers=workers, cpus_per_worker=cpus_per_worker,
                              gpus_per_worker=gpus_per_worker)
        else:
            written = run_local(pending, out, model=str(model), batch_size=batch_size, mode=mode, bar=bar,
                                num_threads=num_threads)
    finish_manifest(out, manifest)
    seconds = time.perf_counter() - start
    logger.info("%d documents in %d shards written to %s in %.1f s", written, len(pending), out, seconds)
    return BatchResult(out, engine, len(plan.shards), skipped, plan.documents, written, seconds)
