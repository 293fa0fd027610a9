"""Ensembles: several NER, or several relation, models read as one that averages their probabilities."""

from __future__ import annotations

from pathlib import Path

import torch

from medtune.errors import ConfigError, ModelError
from medtune.inference.predictor import ONNX_MODES, Predictor, check_mode
from medtune.models.store import load_model, read_meta
from medtune.runtime import tune_allocator


class TagEnsemble(torch.nn.Module):
    """NER taggers that share a tokenizer and tag set, read as one: the word-level tag distribution is
    the mean of the members' distributions (``emissions`` returns its log, which the NER decoder
    treats as any model's log-probabilities)."""

    head = "linear"

    def __init__(self, members: list[torch.nn.Module]) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def emissions(self, input_ids, attention_mask, word_index, token_type_ids=None) -> torch.Tensor:
        return _log_mean_probs([m.emissions(input_ids, attention_mask, word_index, token_type_ids)
                                for m in self.members])


class ClassEnsemble(torch.nn.Module):
    """Relation models that share a tokenizer, schema and classes, read as one: ``logits`` is the log
    of the mean of the members' class distributions, so its softmax is that mean."""

    def __init__(self, members: list[torch.nn.Module]) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, **batch) -> dict[str, torch.Tensor]:
        return {"logits": _log_mean_probs([m(**batch)["logits"] for m in self.members])}


def _log_mean_probs(logits: list[torch.Tensor]) -> torch.Tensor:
    logp = torch.stack([torch.log_softmax(x.float(), dim=-1) for x in logits])
    return torch.logsumexp(logp, dim=0) - torch.log(torch.tensor(float(len(logits))))


#: how members' outputs are combined, by the task's ``ensemble`` kind
WRAPPERS: dict[str, type[torch.nn.Module]] = {"tags": TagEnsemble, "classes": ClassEnsemble}


def load_ensemble(paths: list[str | Path], *, device: str | None = None, mode: str = "auto",
                  batch_size: int = 32, num_threads: int | None = None) -> Predictor:
    """Load several model directories of one task as one model that averages their probabilities
    (for NER the word-level tag probabilities, for relations the class probabilities: the task's
    ``ensemble`` kind says which).

    The members must be of one task, with the same labels, settings (the task's ``ensemble_meta``) and
    tokenizer (e.g. one config trained with different seeds). Windows follow the first member's settings.
    """
    check_mode(mode)
    if mode in ONNX_MODES:
        raise ConfigError(f"an ensemble runs in torch, not in mode '{mode}'", fix="use mode auto, fp32 or bf16")
    if len(paths) < 2:
        raise ConfigError("an ensemble needs at least two model directories", fix="list two or more, or use load()")
    kind = read_meta(paths[0]).get("task")
    tune_allocator()
    if num_threads:
        torch.set_num_threads(num_threads)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    members, first = [], None
    for path in paths:
        model, tokenizer, task = load_model(path, expected_task=kind, device=dev)
        task.check_ensemble_member(model, path)
        if first is None:
            first = (tokenizer, task)
        else:
            _check_same(task, first[1], tokenizer, first[0], path, paths[0])
        members.append(model)
    wrapper = WRAPPERS[first[1].ensemble](members)
    return Predictor(wrapper.eval(), first[0], first[1], device=dev, mode=mode, batch_size=batch_size)


def _check_same(task, ref, tokenizer, ref_tokenizer, path, ref_path) -> None:
    fix = "ensemble models trained with the same labels and settings (e.g. one config, different seeds)"
    for key in task.ensemble_attributes:
        if getattr(task, key) != getattr(ref, key):
            raise ModelError(f"{path} has {key} {getattr(task, key)}, but {ref_path} has {getattr(ref, key)}", fix=fix)
    for key in task.ensemble_meta:
        if task.meta.get(key) != ref.meta.get(key):
            raise ModelError(f"{path} has {key} {task.meta.get(key)!r}, but {ref_path} has {ref.meta.get(key)!r}",
                             fix=fix)
    if tokenizer.get_vocab() != ref_tokenizer.get_vocab():
        raise ModelError(f"{path} has another tokenizer than {ref_path}",
                         fix="ensemble models fine-tuned from the same base model")
