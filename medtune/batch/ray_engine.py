"""The Ray engine: the local engine's :class:`ShardAnnotator` in a pool of Ray actors (Ray Data).

The driver plans the shards; ``ray.data.from_items`` holds one row per pending shard, and
``map_batches(RayShardWorker, compute=ActorPoolStrategy(size=N))`` runs them on N actors, each of which loads the pipeline
or model once (in its constructor) and then reads, annotates and writes one shard per call. With
``--ray-address`` the driver joins an existing cluster (``ray start --head`` on one machine, ``ray start
--address=HEAD:6379`` on the others, or KubeRay); without it, it starts a local Ray for the run. Workers
read the input and write the output folder themselves, so on a cluster both must be on storage every
node sees, at the same path (NFS or a similar shared file system), as with Ray Data's own readers.

A worker never lets an exception out: it returns the error's code and message (medtune's messages hold
no note text; for any other exception only its type and place), so that Ray logs no traceback that could
quote a note, and the driver raises it as a coded error.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from tqdm import tqdm

from medtune.batch.engine import ShardAnnotator
from medtune.batch.shards import Shard
from medtune.batch.store import ShardFailed
from medtune.errors import MedtuneError, MissingExtraError

logger = logging.getLogger(__name__)

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def import_ray() -> Any:
    """``ray`` (with Ray Data), or a ``MissingExtraError`` naming ``pip install 'medtune[ray]'``."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingExtraError("--engine ray", "ray") from None
    return ray


def _where(err: BaseException) -> str:
    """`` at medtune/x.py:12``: the innermost frame inside medtune (never the exception's message)."""
    frames = traceback.extract_tb(err.__traceback__)
    for frame in reversed(frames):
        try:
            name = Path(frame.filename).resolve().relative_to(_PACKAGE_ROOT.parent)
        except (ValueError, OSError):
            continue
        return f" at {name}:{frame.lineno}"
    return ""


def _failure(err: BaseException) -> tuple[str, str, str]:
    if isinstance(err, MedtuneError):
        return err.code, err.message, err.fix or ""
    return ("E900", f"internal error ({type(err).__name__}){_where(err)} on a Ray worker: a bug in medtune, not "
            "a problem of your input", "rerun the shard with --engine local and `medtune --debug` for the "
            "traceback, and report it")


class RayShardWorker:
    """The callable class given to ``map_batches``: one per actor, so the models load once per actor."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.failure: tuple[str, str, str] | None = None
        try:
            self.annotator: ShardAnnotator | None = ShardAnnotator(**settings)
        except Exception as err:  # reported with each shard: Ray would log the traceback of a failed actor
            self.annotator, self.failure = None, _failure(err)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list[Any]] = {"name": [], "documents": [], "code": [], "message": [], "fix": []}
        for text in batch["shard"]:
            shard = Shard.from_json(str(text))
            count, failure = 0, self.failure
            if self.annotator is not None:
                try:
                    count = self.annotator.annotate(shard)
                except Exception as err:
                    failure = _failure(err)
            code, message, fix = failure or ("", "", "")
            for key, value in zip(out, (shard.name, count, code, message, fix)):
                out[key].append(value)
        return {key: np.asarray(values) for key, values in out.items()}


@contextlib.contextmanager
def connected(ray: Any, address: str | None) -> Iterator[None]:
    """This process's Ray session: the one already open (a test's ``ray.init``, a notebook's), else a
    connection to the cluster at ``address``, else a local Ray started for the run and shut down after."""
    if ray.is_initialized():
        if address is not None:
            logger.warning("this process is already connected to a Ray cluster; --ray-address %s is not used",
                           address)
        yield
        return
    if address is not None:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()


def run_ray(shards: list[Shard], out: Path, *, model: str, batch_size: int | None, mode: str | None, bar: tqdm,
            address: str | None = None, workers: int | None = None, cpus_per_worker: float = 1.0,
            gpus_per_worker: float = 0.0) -> int:
    """Annotate ``shards`` on a Ray cluster with ``workers`` actors of ``cpus_per_worker`` CPUs (and
    ``gpus_per_worker`` GPUs: Ray hides the GPUs from an actor that asks for none) each (default: as many
    actors as the cluster's CPUs, or GPUs, allow, at most one per shard); returns the documents written."""
    ray = import_ray()
    if not shards:
        return 0
    if not logger.isEnabledFor(logging.INFO):  # Ray Data logs each execution at INFO (names, no text)
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    with connected(ray, address):
        context = ray.data.DataContext.get_current()
        saved = context.enable_progress_bars
        context.enable_progress_bars = False  # the driver's own bar counts documents
        try:
            if workers is None:
                resources = ray.cluster_resources()
                workers = int(float(resources.get("CPU", 1.0)) // cpus_per_worker) or 1
                if gpus_per_worker:
                    workers = min(workers, int(float(resources.get("GPU", 0.0)) // gpus_per_worker) or 1)
            workers = max(1, min(workers, len(shards)))
            settings = {"model": str(Path(model).resolve()), "out_dir": str(out.resolve()),
                        "batch_size": batch_size, "mode": mode, "num_threads": max(1, int(cpus_per_worker))}
            logger.info("Ray: %d shards on %d workers of %s CPUs", len(shards), workers, cpus_per_worker)
            items = [{"shard": shard.to_json()} for shard in shards]
            dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
                RayShardWorker, fn_constructor_kwargs={"settings": settings}, batch_size=1, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus_per_worker,
                num_gpus=gpus_per_worker or None)
            total = 0
            for row in dataset.iter_rows():
                if row["code"]:
                    raise ShardFailed(str(row["code"]), f"shard {row['name']}: {row['message']}",
                                      str(row["fix"]) or None)
                total += int(row["documents"])
                bar.update(int(row["documents"]))
            return total
        finally:
            context.enable_progress_bars = saved
