"""The output directory of a training run: checked before the run, tidied after a failure, written
atomically at the end.

A finished model directory holds ``config.json`` and no ``checkpoints/``; an interrupted run leaves
``checkpoints/checkpoint-N`` (one per epoch) and no ``config.json`` (or the previous model's, under
``--overwrite``). Every check here runs before anything is written.

Under a distributed launcher (``torchrun``, ``accelerate launch``: DDP through the HF Trainer) every
process runs the same stages, but only the main process (global rank 0, :func:`is_main_process`) writes
or removes anything here: the model directory and its card, the stale checkpoints a run replaces, the
empty folders of a failed run. The Trainer itself saves checkpoints from rank 0 only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any, Iterator

import torch.distributed as dist
from safetensors import SafetensorError, safe_open
from torch import nn
from transformers.trainer_utils import get_last_checkpoint

from medtune.config import RunConfig
from medtune.errors import ConfigError, ModelError
from medtune.fileutils import atomic_write
from medtune.models.card import model_card
from medtune.models.store import WEIGHTS_NAME, save_model
from medtune.tasks import Task

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
TRAINER_STATE = "trainer_state.json"


def is_main_process() -> bool:
    """True in the one process that writes the output directory: global rank 0 of a distributed run
    (``torch.distributed``, else the launcher's ``RANK``), or the only process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    rank = os.environ.get("RANK", "0").strip()
    return not rank.isdigit() or int(rank) == 0


def wait_for_all_processes() -> None:
    """A barrier between the processes of a distributed run; nothing in a single process."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def checkpoint_to_resume(out: Path, *, resume: bool, overwrite: bool) -> str | None:
    """Refuse an output directory this run cannot use; the checkpoint to resume from (None = from the
    beginning). Nothing is written or removed."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output {out} is a file, not a directory",
                          fix="give the path of a new directory (or of a model directory to --overwrite)")
    finished = (out / "config.json").exists()
    if finished and not (resume or overwrite):
        raise ConfigError(f"{out} already holds a model", fix="pass --overwrite, or choose another --output")
    if not resume:
        return None
    checkpoints = out / CHECKPOINT_DIR
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if last is None:
        if finished and not overwrite:
            raise ConfigError(f"--resume: the model in {out} has already finished training (it has no "
                              f"{CHECKPOINT_DIR}/)", fix="use --overwrite to retrain it, or drop --resume")
        logger.warning("--resume: no checkpoint under %s; training starts from the beginning", checkpoints)
        return None
    check_checkpoint(Path(last))
    return last


def check_checkpoint(checkpoint: Path) -> None:
    """Raise ModelError unless ``checkpoint`` looks loadable: a run killed while saving leaves a
    truncated one, which the Trainer would only notice after building everything."""
    problem = _checkpoint_problem(checkpoint)
    if problem:
        raise ModelError(f"--resume: checkpoint {checkpoint} cannot be loaded ({problem})",
                         fix=f"delete {checkpoint} to resume from the checkpoint before it, or drop --resume "
                         "to train from the beginning")


def _checkpoint_problem(checkpoint: Path) -> str | None:
    for name in (TRAINER_STATE, WEIGHTS_NAME):
        if not (checkpoint / name).is_file():
            return f"{name} is missing"
    current = TRAINER_STATE
    try:
        state = json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))
        if not isinstance(state, dict) or "global_step" not in state:
            return f"{TRAINER_STATE} has no global_step"
        current = WEIGHTS_NAME
        with safe_open(str(checkpoint / WEIGHTS_NAME), framework="pt") as weights:
            if not list(weights.keys()):
                return f"{WEIGHTS_NAME} holds no tensors"
        for path in sorted(checkpoint.glob("*.pt")) + sorted(checkpoint.glob("*.pth")):
            current = path.name
            with zipfile.ZipFile(path) as archive:  # torch.save writes a zip archive with CRCs
                if archive.testzip() is not None:
                    return f"{path.name} fails its checksum"
    except (OSError, ValueError, SafetensorError, zipfile.BadZipFile) as err:
        return f"{current}: {type(err).__name__}: {err}"
    return None


def remove_stale_checkpoints(out: Path) -> None:
    """Checkpoints of an earlier interrupted run, which a run that does not resume must not mix with its own
    (removed by the main process only)."""
    if is_main_process():
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)


@contextlib.contextmanager
def tidied_on_failure(out: Path) -> Iterator[None]:
    """When the block fails, remove ``checkpoints/`` if no checkpoint was written into it, and ``out``
    (with the parents this run made) if it is left empty (a checkpoint that was written stays, for --resume).
    Only the main process tidies."""
    made = [path for path in (out, *out.parents) if not path.exists()]  # deepest first
    try:
        yield
    except BaseException:
        if is_main_process():
            for path in (out / CHECKPOINT_DIR, *made):
                _remove_if_empty(path)
        raise


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):  # not there, or not empty
        path.rmdir()


def write_model_dir(out: Path, model: nn.Module, tokenizer: Any, task: Task, config: RunConfig,
                    metrics: dict[str, Any]) -> None:
    """Write the model files into a temporary folder, then move them in with config.json last, and
    remove the checkpoints. In a distributed run only the main process writes (the others return)."""
    if not is_main_process():
        return
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".incoming"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(tmp, model, tokenizer, task)
    with atomic_write(tmp / "medtune_config.yaml") as handle:
        handle.write(config.to_yaml())
    with atomic_write(tmp / "metrics.json") as handle:
        json.dump(metrics, handle, indent=2)
    with atomic_write(tmp / "README.md") as handle:
        handle.write(model_card(config, task.meta, metrics))
    names = sorted(p.name for p in tmp.iterdir())
    names.sort(key=lambda n: n == "config.json")
    for name in names:
        os.replace(tmp / name, out / name)
    tmp.rmdir()
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
