"""DP-SGD inside the Hugging Face Trainer: Poisson-sampled units, per-unit clipping by ghost norms, noise.

The privacy unit is a *unit* (one training document, or the documents sharing ``privacy.dp.unit_field``),
not a batch row: a task cuts a long document into several windows (NER) or chunks (classification), and
makes several candidates of one document (relation, assertion). A unit's rows always travel together, and
its gradient norm is taken over all of them at once, exactly:

* ``nn.Linear``: the unit's rows are laid end to end as one long sequence and Opacus' ghost-norm formula
  (or the per-unit gradient, when that is cheaper) gives the norm of the sum of the rows' gradients;
* ``nn.Embedding``: the same, with Opacus' embedding norm sampler;
* any other layer (LayerNorm, Conv1d, ...): Opacus' per-row gradients, summed per unit, then the norm.

One step (``PrivateTrainer.training_step``): a Poisson sample of units (``UniformWithReplacementSampler``:
each unit independently with probability q; an empty sample is a step of noise only); for each physical
part, a backward pass of the sum of the unit losses records every unit's gradient norm, then a second
backward pass of ``sum_u min(1, C / norm_u) * loss_u`` leaves the clipped sum in ``.grad``; then Gaussian
noise of standard deviation ``sigma * C`` is added and the sum divided by the *expected* batch size q N
(the actual one is private). Batches and noise come from generators seeded from the operating system's
entropy, never from ``training.seed``: a known seed would tell which units were in which batch and what
noise was added.
"""

from __future__ import annotations

import json
import logging
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from opacus.grad_sample import GradSampleHooksFastGradientClipping
from opacus.grad_sample.embedding_norm_sample import compute_embedding_norm_sample
from opacus.grad_sample.functorch import ft_compute_per_sample_gradient
from opacus.utils.module_utils import trainable_parameters
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from medtune.errors import ConfigError
from medtune.fileutils import atomic_write
from medtune.models.heads import MarkedSpanModel, SequenceClassificationModel, TokenTaggingModel
from medtune.training.run import PRIVACY_STATE
from medtune.training.trainer import MedtuneTrainer

if TYPE_CHECKING:
    from medtune.training.privacy import PrivacyPlan

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- per-unit losses
#: (loss summed over each feature's items, number of items of each feature), from a collated batch
FeatureLosses = Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class UnitLoss:
    """How a head module's loss splits by feature. ``subrow_key`` names a batch key mapping the model's
    rows to features when a feature spans several rows (classification chunks: ``chunk_to_doc``)."""

    losses: FeatureLosses
    subrow_key: str | None = None


#: head module class -> its per-feature loss; a task whose head is not here cannot train privately
UNIT_LOSSES: dict[type[nn.Module], UnitLoss] = {}


def register_unit_loss(model_class: type[nn.Module], subrow_key: str | None = None):
    def wrap(fn: FeatureLosses) -> FeatureLosses:
        UNIT_LOSSES[model_class] = UnitLoss(fn, subrow_key)
        return fn
    return wrap


@register_unit_loss(TokenTaggingModel)
def _tagging_losses(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    labels = batch.pop("labels")
    logits = model(**batch)["logits"].float()  # (features, words, tags)
    token_loss = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
    counted = labels != -100
    return (token_loss * counted).sum(1), counted.sum(1)


@register_unit_loss(SequenceClassificationModel, subrow_key="chunk_to_doc")
def _classification_losses(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    labels = batch.pop("labels")
    logits = model(**batch)["logits"].float()  # (features, labels): one feature per document
    if model.multi_label:
        loss = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none").mean(1)
    else:
        loss = F.cross_entropy(logits, labels, weight=model.class_weights, reduction="none")
    return loss, torch.ones_like(loss)


@register_unit_loss(MarkedSpanModel)
def _marked_losses(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    labels = batch.pop("labels")
    loss = F.cross_entropy(model(**batch)["logits"].float(), labels, reduction="none")
    return loss, torch.ones_like(loss)


def unit_loss_for(model: nn.Module, task_name: str) -> UnitLoss:
    for cls in type(model).__mro__:
        if cls in UNIT_LOSSES:
            return UNIT_LOSSES[cls]
    raise ConfigError(f"privacy: the '{task_name}' task ({type(model).__name__}) has no per-unit loss, so its "
                      "gradients cannot be clipped per document",
                      fix="remove the privacy: section, or register one with "
                      "medtune.training.dp_trainer.register_unit_loss")


# --------------------------------------------------------------------------- collation
class UnitCollator:
    """A list of sampled units (each a list of features) -> ``{"dp_parts": [batch, ...], "dp_units": n}``.

    Each part is the task's own collation of whole units (at most ``physical_batch_size`` features, unless
    one unit alone has more), plus ``dp_feature_unit`` (the unit of each feature, 0-based in the part) and
    ``dp_n_units``. Units without features (a sentence with no candidate pair) are counted, add nothing."""

    def __init__(self, collate: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
                 physical_batch_size: int | None) -> None:
        self.collate = collate
        self.physical_batch_size = physical_batch_size

    def __call__(self, units: list[list[dict[str, Any]]]) -> dict[str, Any]:
        parts, current = [], []
        for unit in (u for u in units if u):
            if current and self.physical_batch_size and sum(map(len, current)) + len(unit) > self.physical_batch_size:
                parts.append(self._part(current))
                current = []
            current.append(unit)
        if current:
            parts.append(self._part(current))
        return {"dp_parts": parts, "dp_units": len(units)}

    def _part(self, units: list[list[dict[str, Any]]]) -> dict[str, torch.Tensor]:
        features = [f for unit in units for f in unit]
        batch = dict(self.collate(features))
        batch["dp_feature_unit"] = torch.tensor([u for u, unit in enumerate(units) for _ in unit], dtype=torch.long)
        batch["dp_n_units"] = torch.tensor(len(units))
        return batch


# --------------------------------------------------------------------------- per-unit norms
def _group_rows(x: torch.Tensor, unit: torch.Tensor, slot: torch.Tensor, n_units: int, width: int) -> torch.Tensor:
    """Rows ``(B, *rest)`` -> ``(n_units, width, *rest)``: each unit's rows side by side (zeros after them)."""
    out = x.new_zeros((n_units, width, *x.shape[1:]))
    out[unit, slot] = x
    return out


def _linear_norms(layer: nn.Linear, a: torch.Tensor, g: torch.Tensor) -> dict[nn.Parameter, torch.Tensor]:
    """Per-unit gradient norms of a linear layer from ``a`` (units, positions, in) and ``g`` (units,
    positions, out): the ghost formula sum_ij (a_i.a_j)(g_i.g_j), or the gradient itself when smaller."""
    out = {}
    if layer.weight.requires_grad:
        positions, d_in, d_out = a.shape[1], a.shape[2], g.shape[2]
        if positions * (d_in + d_out) <= d_in * d_out:
            squared = (torch.einsum("nik,njk->nij", g, g) * torch.einsum("nik,njk->nij", a, a)).sum((1, 2))
        else:
            squared = torch.einsum("nsp,nsd->npd", g, a).pow(2).sum((1, 2))
        out[layer.weight] = squared.clamp(min=0).sqrt()
    if layer.bias is not None and layer.bias.requires_grad:
        out[layer.bias] = g.sum(1).norm(dim=-1)
    return out


class UnitNormHooks(GradSampleHooksFastGradientClipping):
    """Opacus' fast-gradient-clipping hooks on ``model`` (not wrapped: it saves and loads as before), with
    each parameter's ``_norm_sample`` taken per privacy unit instead of per row (see the module doc).

    ``set_units(rows, n_units)`` before each forward pass: ``rows`` maps a batch length (the number of
    rows a layer sees) to the unit of each row."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model, batch_first=True, loss_reduction="sum", strict=True, max_grad_norm=1.0,
                         use_ghost_clipping=True)
        self.names = {id(p): name for name, p in model.named_parameters()}
        self._rows: dict[int, tuple[torch.Tensor, torch.Tensor, int]] = {}
        self.n_units = 0

    def set_units(self, rows: dict[int, torch.Tensor], n_units: int) -> None:
        self._rows = {}
        for length, unit in rows.items():
            order = torch.argsort(unit, stable=True)
            counts = torch.bincount(unit, minlength=n_units)
            starts = torch.cumsum(counts, 0) - counts
            slot = torch.empty_like(unit)
            slot[order] = torch.arange(len(unit), device=unit.device) - starts[unit[order]]
            self._rows[length] = (unit, slot, int(counts.max()))
        self.n_units = n_units
        for p in self.trainable_parameters:
            p._norm_sample = None

    def capture_backprops_hook(self, module: nn.Module, _forward_input: Any, forward_output: Any,
                               loss_reduction: str, batch_first: bool) -> None:
        if not self.hooks_enabled:
            return
        activations, backprops = self.rearrange_grad_samples(
            module=module, backprops=forward_output[0].detach(), loss_reduction="sum", batch_first=True)
        if module.activations:
            raise ConfigError(f"privacy: the layer {type(module).__name__} runs more than once in a forward pass "
                              "(shared weights), which per-unit clipping does not support",
                              fix="freeze that layer, or use a model without tied weights")
        rows = self._rows.get(backprops.shape[0])
        if rows is None:
            raise ConfigError(f"privacy: a {type(module).__name__} layer sees {backprops.shape[0]} rows, which "
                              f"match no batch of the task's collation ({sorted(self._rows)})",
                              fix="register the task's row layout with register_unit_loss(subrow_key=...)")
        for param, norm in self._unit_norms(module, activations, backprops.float(), rows).items():
            param._norm_sample = norm
        for _, p in trainable_parameters(module):
            p._forward_counter -= 1
        if hasattr(module, "max_batch_len"):
            del module.max_batch_len

    def _unit_norms(self, module: nn.Module, activations: list[torch.Tensor], backprops: torch.Tensor,
                    rows: tuple[torch.Tensor, torch.Tensor, int]) -> dict[nn.Parameter, torch.Tensor]:
        unit, slot, width = rows
        n = self.n_units
        if type(module) is nn.Linear:
            a = _group_rows(activations[0].float(), unit, slot, n, width)
            g = _group_rows(backprops, unit, slot, n, width)
            return _linear_norms(module, a.reshape(n, -1, a.shape[-1]), g.reshape(n, -1, g.shape[-1]))
        if type(module) is nn.Embedding:
            ids = _group_rows(activations[0], unit, slot, n, width).reshape(n, -1)
            g = _group_rows(backprops, unit, slot, n, width).reshape(n, -1, backprops.shape[-1])
            return compute_embedding_norm_sample(module, [ids], g)
        sampler = self.GRAD_SAMPLERS.get(type(module), ft_compute_per_sample_gradient)
        acts = [a.float() if a.is_floating_point() else a for a in activations]
        out = {}
        for param, per_row in sampler(module, acts, backprops).items():
            per_unit = per_row.new_zeros((n, *per_row.shape[1:])).index_add_(0, unit, per_row)
            out[param] = per_unit.reshape(n, -1).norm(dim=-1)
        return out

    def unit_norms(self) -> torch.Tensor:
        """The L2 norm of each unit's whole gradient, after the first backward pass; refuses a parameter
        that got a gradient the hooks did not see (used outside its layer's forward)."""
        squares = None
        for p in self.trainable_parameters:
            if p._norm_sample is None:
                if p.grad is not None and bool(p.grad.ne(0).any()):
                    raise ConfigError(f"privacy: the parameter {self.names.get(id(p), '?')} gets a gradient "
                                      "outside its layer's forward, which per-unit clipping cannot see",
                                      fix="freeze it (requires_grad False), or use another base model")
                continue
            part = p._norm_sample.to(torch.float32).pow(2)
            squares = part if squares is None else squares + part
        if squares is None:
            return torch.zeros(self.n_units)
        return squares.sqrt()


# --------------------------------------------------------------------------- one part of a step
def unit_losses(model: nn.Module, part: dict[str, torch.Tensor], unit_loss: UnitLoss,
                hooks: UnitNormHooks) -> torch.Tensor:
    """The forward pass of one collated part (``UnitCollator``): each unit's mean loss over its items
    (words, candidates, documents). Tells ``hooks`` which unit each row of each layer belongs to."""
    part = dict(part)
    feature_unit, n_units = part.pop("dp_feature_unit"), int(part.pop("dp_n_units"))
    rows = {len(feature_unit): feature_unit}
    if unit_loss.subrow_key is not None:
        sub = feature_unit[part[unit_loss.subrow_key]]
        if len(sub) in rows and not torch.equal(rows[len(sub)], sub):
            raise RuntimeError("DP-SGD: two row layouts of one length disagree")
        rows[len(sub)] = sub
    hooks.set_units(rows, n_units)
    losses, counts = unit_loss.losses(model, part)
    sums = losses.new_zeros(n_units).index_add(0, feature_unit, losses)
    totals = counts.new_zeros(n_units).index_add(0, feature_unit, counts).clamp(min=1)
    return sums / totals


def clipped_backward(unit_loss: torch.Tensor, hooks: UnitNormHooks, params: list[nn.Parameter],
                     max_grad_norm: float) -> torch.Tensor:
    """Add ``sum_u min(1, C / |g_u|) g_u`` of one part to the parameters' ``.grad`` (what they held
    before is kept); returns the units' gradient norms |g_u| (not private: never log or save them)."""
    kept = [p.grad for p in params]
    for p in params:
        p.grad = None
    with warnings.catch_warnings():  # the first layer's input needs no gradient: its hook still fires
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        unit_loss.sum().backward(retain_graph=True)  # the hooks record each unit's gradient norm
        norms = hooks.unit_norms()
        coefficient = (max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        for p, grad in zip(params, kept):
            p.grad = grad
        hooks.disable_hooks()
        try:
            (coefficient.to(unit_loss.device).detach() * unit_loss).sum().backward()
        finally:
            hooks.enable_hooks()
    return norms


# --------------------------------------------------------------------------- the trainer
class BudgetCallback(TrainerCallback):
    """Stops training before a step would spend more than the privacy budget: after every step, one more
    must stay within the steps for which the accountant gave epsilon <= target (``plan.steps``)."""

    def __init__(self, plan: "PrivacyPlan") -> None:
        self.plan = plan
        self.stopped_by_budget = False

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step + 1 > self.plan.steps:
            self.stopped_by_budget = state.global_step < state.max_steps
            control.should_training_stop = True
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        logger.info("DP-SGD: %d of %d steps, epsilon spent %.3f of %.3f (delta %.3g, %s)", state.global_step,
                    self.plan.steps, self.plan.epsilon_after(state.global_step), self.plan.epsilon,
                    self.plan.delta, self.plan.accountant)
        return control


def secure_generator(device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator seeded from the operating system's entropy (not from ``training.seed``)."""
    return torch.Generator(device=device).manual_seed(secrets.randbits(63))


class PrivateTrainer(MedtuneTrainer):
    """``MedtuneTrainer`` whose training step is DP-SGD over units (see the module doc)."""

    def __init__(self, *args: Any, plan: "PrivacyPlan", hooks: UnitNormHooks, unit_loss: UnitLoss,
                 physical_batch_size: int | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan = plan
        self.hooks = hooks
        self.unit_loss = unit_loss
        self.unit_collator = UnitCollator(self.data_collator, physical_batch_size)
        self.dp_params = list(hooks.trainable_parameters)
        self._generators: dict[str, torch.Generator] = {}
        self.empty_batches = 0

    def _generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            self._generators[key] = secure_generator(device)
        return self._generators[key]

    def get_train_dataloader(self) -> DataLoader:
        sampler = UniformWithReplacementSampler(num_samples=len(self.train_dataset), sample_rate=self.plan.sample_rate,
                                                generator=self._generator(torch.device("cpu")))
        return DataLoader(self.train_dataset, batch_sampler=sampler, collate_fn=self.unit_collator, num_workers=0)

    def training_step(self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        if self.state.global_step >= self.plan.steps:  # the budget callback stops before this
            raise RuntimeError("DP-SGD: one more step would exceed the privacy budget")
        model.train()
        loss_sum, units = torch.zeros((), device=self.args.device), 0
        for part in inputs["dp_parts"]:
            with self.compute_loss_context_manager():
                unit_loss = unit_losses(model, self._prepare_inputs(part), self.unit_loss, self.hooks)
            clipped_backward(unit_loss, self.hooks, self.dp_params, self.plan.max_grad_norm)
            loss_sum += unit_loss.detach().sum()
            units += len(unit_loss)
        if not inputs["dp_parts"]:
            self.empty_batches += 1
        self._add_noise()
        return loss_sum / max(units, 1)

    def _add_noise(self) -> None:
        std = self.plan.noise_multiplier * self.plan.max_grad_norm
        for p in self.dp_params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            noise = torch.normal(0.0, std, size=p.shape, generator=self._generator(p.device), device=p.device)
            p.grad.add_(noise.to(p.grad.dtype)).div_(self.plan.expected_batch_size)

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        if self.args.should_save and folder.is_dir():
            with atomic_write(folder / PRIVACY_STATE) as handle:
                json.dump({**self.plan.as_dict(), "steps_taken": self.state.global_step}, handle, indent=2)
