"""Annotating shards: the one code path of both engines (the local loop here, and each Ray actor).

:class:`ShardAnnotator` loads the pipeline or model once and then, per shard, reads its documents,
runs them through ``Pipeline.pipe`` / ``Predictor.pipe`` and writes the output shard atomically. The
local engine is a loop over the shards that are not done yet; the Ray engine
(:mod:`medtune.batch.ray_engine`) runs the same class in a pool of actors.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from medtune.batch.shards import Shard, read_shard
from medtune.batch.store import write_shard
from medtune.errors import ConfigError, ModelError
from medtune.inference.predictor import check_mode, load
from medtune.pipeline import Pipeline, is_pipeline_file

logger = logging.getLogger(__name__)


def check_model(model: str | Path, mode: str | None) -> None:
    """Refuse, before any work, a model argument that is neither a pipeline YAML nor a model directory."""
    path = Path(model)
    if is_pipeline_file(path):
        if mode is not None:
            raise ConfigError("--mode applies to a model directory, not to a pipeline",
                              fix="set `mode:` on the components of the pipeline YAML, or drop --mode")
        return
    if mode is not None:
        check_mode(mode)
    if not path.is_dir():
        raise ModelError(f"{path} is neither a pipeline YAML (.yaml, .yml) nor a model directory",
                         fix="give a pipeline file (see pipelines/) or a folder written by `medtune train`")
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} holds no config.json: not a model directory written by `medtune train`",
                         fix="give a finished model directory (training writes config.json last)")


def load_runner(model: str | Path, *, batch_size: int | None, mode: str | None) -> Any:
    """A ``Pipeline`` for a pipeline YAML, else the ``Predictor`` of a model directory."""
    check_model(model, mode)
    if is_pipeline_file(model):
        return Pipeline.from_yaml(model)
    return load(model, mode=mode or "auto", batch_size=batch_size or 32)


class ShardAnnotator:
    """The model (or pipeline) loaded once; :meth:`annotate` turns one input shard into its output file."""

    def __init__(self, model: str, out_dir: str, *, batch_size: int | None = None, mode: str | None = None,
                 num_threads: int | None = None) -> None:
        if num_threads:
            torch.set_num_threads(max(1, int(num_threads)))
        self.runner = load_runner(model, batch_size=batch_size, mode=mode)
        self.out = Path(out_dir)
        self.batch_size = batch_size

    def annotate(self, shard: Shard, on_document: Callable[[], None] | None = None) -> int:
        """Annotate ``shard`` and write ``out_dir/<shard>.jsonl|parquet``; returns the document count."""
        docs = self.runner.pipe(read_shard(shard), batch_size=self.batch_size)
        written = write_shard(docs, self.out / shard.output_name, shard.output_format, on_document,
                              expected=shard.count)
        logger.info("shard %s: %d documents written", shard.name, written)
        return written


def progress_bar(total: int, done: int, enabled: bool) -> tqdm:
    """Documents done, on stderr; off with ``enabled=False`` and when stderr is not a terminal."""
    return tqdm(total=total, initial=done, unit="doc", desc="documents", file=sys.stderr,
                disable=None if enabled else True, dynamic_ncols=True)


def run_local(shards: list[Shard], out: Path, *, model: str, batch_size: int | None, mode: str | None,
              bar: tqdm, num_threads: int | None = None) -> int:
    """Annotate ``shards`` one after the other in this process; returns the documents written."""
    if not shards:
        return 0
    annotator = ShardAnnotator(model, str(out), batch_size=batch_size, mode=mode, num_threads=num_threads)
    total = 0
    for shard in shards:
        total += annotator.annotate(shard, on_document=lambda: bar.update(1))
    return total

