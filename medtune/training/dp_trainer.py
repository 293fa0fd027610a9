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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from opacus.grad_sample import GradSampleHooksFastGradientClipping
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
def _linear_norms(layer: nn.Linear, a: torch.Tensor, g: torch.Tensor,
                  bounds: list[tuple[int, int]]) -> dict[nn.Parameter, torch.Tensor]:
    """Per-unit gradient norms of a linear layer. ``a`` (rows, positions, in) and ``g`` (rows, positions,
    out) hold the rows of unit k at ``bounds[k]``; a unit's rows and positions form one sequence of S
    vectors, whose gradient norm is the ghost formula sum_ij (a_i.a_j)(g_i.g_j) or, when S (in + out) >
    in * out (fewer operations), the norm of the gradient g^T a itself; products in the dtype of the
    layer's backward pass (bf16 under autocast), sums in float32."""
    d_in, d_out = a.shape[-1], g.shape[-1]
    weights, biases = [], []
    for s, e in bounds:
        au, gu = a[s:e].reshape(-1, d_in), g[s:e].reshape(-1, d_out)
        if layer.weight.requires_grad:
            if au.shape[0] * (d_in + d_out) <= d_in * d_out:
                weights.append(((gu @ gu.T).float() * (au @ au.T).float()).sum().clamp(min=0))
            else:
                weights.append(torch.linalg.vector_norm(gu.T @ au, dtype=torch.float32).square())
        if layer.bias is not None and layer.bias.requires_grad:
            biases.append(torch.linalg.vector_norm(gu.sum(0, dtype=torch.float32)).square())
    out = {}
    if weights:
        out[layer.weight] = torch.stack(weights).sqrt()
    if biases:
        out[layer.bias] = torch.stack(biases).sqrt()
    return out


def _embedding_norms(layer: nn.Embedding, ids: torch.Tensor, g: torch.Tensor,
                     bounds: list[tuple[int, int]]) -> dict[nn.Parameter, torch.Tensor]:
    """Per-unit gradient norms of an embedding table: the rows of each id summed over the unit."""
    squares = []
    for s, e in bounds:
        unit_ids, unit_g = ids[s:e].reshape(-1), g[s:e].reshape(-1, g.shape[-1]).float()
        if layer.padding_idx is not None:  # its row never gets a gradient
            keep = unit_ids != layer.padding_idx
            unit_ids, unit_g = unit_ids[keep], unit_g[keep]
        unique, inverse = torch.unique(unit_ids, return_inverse=True)
        per_id = unit_g.new_zeros((len(unique), unit_g.shape[-1])).index_add_(0, inverse, unit_g)
        squares.append(per_id.pow(2).sum())
    return {layer.weight: torch.stack(squares).sqrt()}


class UnitNormHooks(GradSampleHooksFastGradientClipping):
    """Opacus' fast-gradient-clipping hooks on ``model`` (not wrapped: it saves and loads as before), with
    each parameter's ``_norm_sample`` taken per privacy unit instead of per row (see the module doc).

    ``set_units(rows, n_units)`` before each forward pass: ``rows`` maps a batch length (the number of
    rows a layer sees) to the unit of each row; a unit's rows are contiguous (``UnitCollator`` puts them
    so)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model, batch_first=True, loss_reduction="sum", strict=True, max_grad_norm=1.0,
                         use_ghost_clipping=True)
        self.names = {id(p): name for name, p in model.named_parameters()}
        self._rows: dict[int, tuple[torch.Tensor, list[tuple[int, int]]]] = {}
        self.n_units = 0

    def set_units(self, rows: dict[int, torch.Tensor], n_units: int) -> None:
        self._rows = {}
        for length, unit in rows.items():
            if len(unit) and bool((unit[1:] < unit[:-1]).any()):
                raise RuntimeError("DP-SGD: the rows of a unit must be contiguous")
            ends = torch.cumsum(torch.bincount(unit, minlength=n_units), 0).tolist()
            self._rows[length] = (unit, list(zip([0] + ends[:-1], ends)))
        self.n_units = n_units
        for p in self.trainable_parameters:
            p._norm_sample = None

    def forget_forward_state(self) -> None:
        """Drop what forward passes left for a backward pass that did not come (stored activations, the
        parameters' forward counters): after a backward pass that reached only some layers."""
        for module in self._module.modules():
            if hasattr(module, "activations"):
                module.activations = []
        for p in self.trainable_parameters:
            p._forward_counter = 0

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
        for param, norm in self._unit_norms(module, activations, backprops, rows).items():
            param._norm_sample = norm
        for _, p in trainable_parameters(module):
            p._forward_counter -= 1
        if hasattr(module, "max_batch_len"):
            del module.max_batch_len

    def _unit_norms(self, module: nn.Module, activations: list[torch.Tensor], backprops: torch.Tensor,
                    rows: tuple[torch.Tensor, list[tuple[int, int]]]) -> dict[nn.Parameter, torch.Tensor]:
        unit, bounds = rows
        if type(module) is nn.Linear:  # the input as the backward pass used it (autocast: its dtype)
            return _linear_norms(module, activations[0].to(backprops.dtype), backprops, bounds)
        if type(module) is nn.Embedding:
            return _embedding_norms(module, activations[0], backprops, bounds)
        sampler = self.GRAD_SAMPLERS.get(type(module), ft_compute_per_sample_gradient)
        acts = [a.float() if a.is_floating_point() else a for a in activations]
        out = {}
        for param, per_row in sampler(module, acts, backprops.float()).items():
            per_unit = per_row.new_zeros((self.n_units, *per_row.shape[1:])).index_add_(0, unit, per_row)
            out[param] = per_unit.reshape(self.n_units, -1).norm(dim=-1)
        return out

    def unit_norms(self) -> tuple[torch.Tensor, list[bool]]:
        """After the first backward pass: the L2 norm of each unit's whole gradient, and which trainable
        parameters it covers (a parameter the hooks did not see has no norm)."""
        squares, seen = torch.zeros(self.n_units), []
        for p in self.trainable_parameters:
            seen.append(p._norm_sample is not None)
            if p._norm_sample is not None:
                squares = squares.to(p._norm_sample.device) + p._norm_sample.to(torch.float32).pow(2)
        return squares.sqrt(), seen


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
                     max_grad_norm: float, first_pass_inputs: list[nn.Parameter] | None = None) -> torch.Tensor:
    """Add ``sum_u min(1, C / |g_u|) g_u`` of one part to the parameters' ``.grad`` (what they held
    before is kept); returns the units' gradient norms |g_u| (not private: never log or save them).

    The first backward pass only feeds the hooks: ``first_pass_inputs`` (see ``first_pass_inputs``) spares
    it the weight gradients. A parameter that gets a gradient in the second pass but had no norm in the
    first (used outside its layer's forward) stops training: its gradient would not be clipped."""
    kept = [p.grad for p in params]
    for p in params:
        p.grad = None
    with warnings.catch_warnings():  # the first layer's input needs no gradient: its hook still fires
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        unit_loss.sum().backward(retain_graph=True, inputs=first_pass_inputs)  # the hooks record the norms
        norms, seen = hooks.unit_norms()
        coefficient = (max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        for p, grad, has_norm in zip(params, kept, seen):
            p.grad = grad if has_norm else None
        hooks.disable_hooks()
        try:
            (coefficient.to(unit_loss.device).detach() * unit_loss).sum().backward()
        finally:
            hooks.enable_hooks()
    for p, grad, has_norm in zip(params, kept, seen):
        if not has_norm:
            if p.grad is not None and bool(p.grad.ne(0).any()):
                raise ConfigError(f"privacy: the parameter {hooks.names.get(id(p), '?')} gets a gradient outside "
                                  "its layer's forward, which per-unit clipping cannot see",
                                  fix="freeze it (requires_grad False), or use another base model")
            p.grad = grad
    return norms


def first_pass_inputs(model: nn.Module, part: dict[str, torch.Tensor], unit_loss: UnitLoss, hooks: UnitNormHooks,
                      params: list[nn.Parameter]) -> list[nn.Parameter] | None:
    """What the first backward pass of ``clipped_backward`` must reach: the first trainable parameter
    alone (every layer above it then gets its output gradient, and no weight gradient is computed) when a
    probe on ``part`` shows the hooks seeing the same parameters as with a full pass; else None (all)."""
    seen = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        for inputs in (None, params[:1]):
            unit_losses(model, part, unit_loss, hooks).sum().backward(inputs=inputs)
            seen.append(hooks.unit_norms()[1])
    for p in params:
        p.grad = None
    if seen[0] != seen[1]:  # the layers the probe's second pass did not reach still hold its forward state
        hooks.forget_forward_state()
        return None
    return params[:1]


# --------------------------------------------------------------------------- the trainer
class BudgetCallback(TrainerCallback):
    """Stops training before a step would spend more than the privacy budget: after every step, one more
    must stay within the steps for which the accountant gave epsilon <= target (``plan.steps``)."""

    def __init__(self, plan: PrivacyPlan) -> None:
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

    def __init__(self, *args: Any, plan: PrivacyPlan, hooks: UnitNormHooks, unit_loss: UnitLoss,
                 physical_batch_size: int | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan = plan
        self.hooks = hooks
        self.unit_loss = unit_loss
        self.unit_collator = UnitCollator(self.data_collator, physical_batch_size)
        self.dp_params = list(hooks.trainable_parameters)
        self._generators: dict[str, torch.Generator] = {}
        self.empty_batches = 0
        self._first_pass_inputs: Any = "unknown"  # probed on the first batch (see first_pass_inputs)

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
            part = self._prepare_inputs(part)
            with self.compute_loss_context_manager():
                if self._first_pass_inputs == "unknown":
                    self._first_pass_inputs = first_pass_inputs(model, part, self.unit_loss, self.hooks,
                                                                self.dp_params)
                unit_loss = unit_losses(model, part, self.unit_loss, self.hooks)
            clipped_backward(unit_loss, self.hooks, self.dp_params, self.plan.max_grad_norm, self._first_pass_inputs)
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
