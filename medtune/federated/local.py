"""A site's local training in one federated round: medtune's ``TrainingRun`` on that site's documents only.

:class:`SiteRun` keeps the stages of :class:`~medtune.training.run.TrainingRun` (documents, tokenizer, task,
encoding are prepared once) and trains a round from the global weights with :meth:`SiteRun.train_round`:
a fixed number of optimiser steps (``local_epochs`` over the site's examples), a fresh optimiser and
schedule, no evaluation, no checkpoints, nothing written outside a temporary folder. The task is built from
the metadata the server sends (its label set), so that every site's model has the shapes of the global one.

FedProx adds ``mu / 2 * ||w - w_global||^2`` over the trainable weights to the local loss
(:class:`ProximalTrainer`). A config with ``privacy:`` trains each site with DP-SGD
(:class:`PrivateSiteRun`, the existing Opacus run): its privacy plan covers every round's steps at once
(``rounds * steps per round``), and the epsilon a site has spent after round ``r`` is the accountant's for
``r * steps per round`` steps. The proximal term does not read the data, so it is added to the noisy
gradient without changing the guarantee.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medtune.config import RunConfig
from medtune.errors import ConfigError
from medtune.tasks import task_class
from medtune.training.privacy import PrivacyPlan, PrivateTrainingRun, plan_privacy
from medtune.training.run import Prepared, TrainingRun, load_weights
from medtune.training.trainer import FeatureDataset, MedtuneTrainer


@dataclass
class Proximal:
    """FedProx: ``mu`` and the global weights of the round (trainable parameters only, by name)."""

    mu: float
    anchor: dict[str, torch.Tensor]

    def term(self, model: nn.Module) -> torch.Tensor:
        """``mu / 2 * sum ||w - w_global||^2``."""
        total = None
        for name, p in model.named_parameters():
            if name in self.anchor:
                d = (p - self.anchor[name].to(p.device, p.dtype)).pow(2).sum()
                total = d if total is None else total + d
        if total is None:
            return torch.zeros(())
        return 0.5 * self.mu * total

    def add_gradient(self, model: nn.Module) -> None:
        """The term's gradient, ``mu * (w - w_global)``, added to each trainable weight's gradient."""
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in self.anchor and p.requires_grad:
                    g = self.mu * (p - self.anchor[name].to(p.device, p.dtype))
                    p.grad = g if p.grad is None else p.grad.add_(g)


def anchor_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


class ProximalTrainer(MedtuneTrainer):
    """``MedtuneTrainer`` whose loss has FedProx's proximal term when ``proximal`` is given."""

    def __init__(self, *args: Any, proximal: Proximal | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.proximal = proximal

    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                      num_items_in_batch=num_items_in_batch)
        if self.proximal is None or self.proximal.mu == 0:
            return result
        if return_outputs:
            loss, outputs = result
            return loss + self.proximal.term(model), outputs
        return result + self.proximal.term(model)


def steps_per_round(local_epochs: float, examples: int, batch_size: int, accumulation: int = 1) -> int:
    """Optimiser steps of ``local_epochs`` passes over ``examples`` at ``batch_size * accumulation`` a step."""
    if local_epochs <= 0:
        raise ConfigError(f"--local-epochs {local_epochs}", fix="train at least a fraction of an epoch (e.g. 1)")
    return max(1, math.ceil(local_epochs * examples / (batch_size * accumulation)))


class SiteMixin:
    """What :class:`SiteRun` and :class:`PrivateSiteRun` share: the server's task metadata, the examples
    encoded once, and a round of local training."""

    def _init_site(self, meta: dict[str, Any], rounds: int, local_epochs: float) -> None:
        self.site_meta = dict(meta)
        self.rounds = rounds
        self.local_epochs = local_epochs
        self.proximal: Proximal | None = None
        self._encoded: FeatureDataset | None = None

    def prepare(self) -> Prepared:
        prepared = super().prepare()  # type: ignore[misc]
        cls = task_class(self.config.task)  # type: ignore[attr-defined]
        if prepared.task.meta != self.site_meta:  # the server's label set, so that the shapes agree
            prepared.task = cls(dict(self.site_meta), prepared.tokenizer)
            prepared.task.check_documents(prepared.docs["train"], source="site training data", training=True)
        return prepared

    def encode(self, prepared: Prepared) -> FeatureDataset:
        if self._encoded is None:
            self._encoded = super().encode(prepared)  # type: ignore[misc]
        return self._encoded

    @property
    def examples(self) -> int:
        """Training examples of a round: features (windows), or privacy units in a private run."""
        prepared = self.prepared or self.prepare()  # type: ignore[attr-defined]
        return len(self.encode(prepared))

    @property
    def documents(self) -> int:
        prepared = self.prepared or self.prepare()  # type: ignore[attr-defined]
        return len(prepared.docs["train"])

    def round_steps(self) -> int:
        tc = self.config.training  # type: ignore[attr-defined]
        return steps_per_round(self.local_epochs, self.examples, tc.batch_size, tc.gradient_accumulation_steps)

    def train_round(self, state: dict[str, torch.Tensor], *, seed: int, mu: float = 0.0) -> dict[str, torch.Tensor]:
        """One round: ``round_steps()`` optimiser steps from ``state``; the new weights, on the CPU."""
        prepared = self.prepared or self.prepare()  # type: ignore[attr-defined]
        if self._model is None:  # type: ignore[attr-defined]
            self._model = self.build_model(prepared)  # type: ignore[attr-defined]
        model = self._model  # type: ignore[attr-defined]
        dataset = self.encode(prepared)
        load_weights(model, state)
        self.proximal = Proximal(mu, anchor_of(model)) if mu > 0 else None
        with tempfile.TemporaryDirectory(prefix="medtune-round-") as tmp:
            trainer = self.build_trainer(prepared, model, dataset, Path(tmp), evaluate=False,  # type: ignore[attr-defined]
                                         max_steps=self.round_steps(), save_strategy="no", seed=seed, data_seed=seed)
            self.fit(trainer)  # type: ignore[attr-defined]
        self.proximal = None
        return {name: value.detach().to("cpu", copy=True) for name, value in model.state_dict().items()}


class SiteRun(SiteMixin, TrainingRun):
    """A site's non-private local training."""

    trainer_class = ProximalTrainer

    def __init__(self, config: RunConfig, meta: dict[str, Any], *, rounds: int, local_epochs: float) -> None:
        super().__init__(config)
        self._init_site(meta, rounds, local_epochs)

    def make_trainer(self, **kwargs: Any) -> MedtuneTrainer:
        return ProximalTrainer(proximal=self.proximal, **kwargs)

    def privacy_report(self, rounds_done: int) -> dict[str, Any] | None:
        return None


def _private_trainer_class() -> type:
    from medtune.training.dp_trainer import PrivateTrainer

    class ProximalPrivateTrainer(PrivateTrainer):
        """DP-SGD's noisy step, plus the proximal gradient (data-independent: no privacy cost)."""

        def __init__(self, *args: Any, proximal: Proximal | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.proximal = proximal

        def training_step(self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
            loss = super().training_step(model, inputs, num_items_in_batch)
            if self.proximal is not None and self.proximal.mu > 0:
                self.proximal.add_gradient(model)
            return loss

    return ProximalPrivateTrainer


class PrivateSiteRun(SiteMixin, PrivateTrainingRun):
    """A site's local training with DP-SGD; the privacy plan covers all rounds."""

    def __init__(self, config: RunConfig, meta: dict[str, Any], *, rounds: int, local_epochs: float) -> None:
        super().__init__(config)
        self._init_site(meta, rounds, local_epochs)

    def make_plan(self, units: int, max_steps: int) -> PrivacyPlan:
        tc = self.config.training
        return plan_privacy(self.dp, units, tc.batch_size, tc.epochs, max_steps=self.rounds * self.round_steps())

    def make_trainer(self, **kwargs: Any) -> Any:
        kwargs.pop("make_sampler", None)  # Poisson sampling replaces the sampler
        return _private_trainer_class()(plan=self.plan, hooks=self._hooks, unit_loss=self._unit_loss,
                                        physical_batch_size=self.dp.physical_batch_size, proximal=self.proximal,
                                        **kwargs)

    def privacy_report(self, rounds_done: int) -> dict[str, Any] | None:
        """The epsilon spent after ``rounds_done`` rounds (the plan's accountant), with the plan's settings."""
        if self.plan is None:
            return None
        steps = rounds_done * self.round_steps()
        return {"epsilon_spent": round(self.plan.epsilon_after(steps), 4), "epsilon_target": self.plan.epsilon,
                "delta": self.plan.delta, "accountant": self.plan.accountant, "unit": self.plan.unit,
                "units": self.plan.units, "steps": steps, "planned_steps": self.plan.steps,
                "noise_multiplier": round(self.plan.noise_multiplier, 6), "max_grad_norm": self.plan.max_grad_norm,
                "sample_rate": round(self.plan.sample_rate, 6)}


def site_run(config: RunConfig, meta: dict[str, Any], *, rounds: int, local_epochs: float) -> SiteRun | PrivateSiteRun:
    """The site's run class: private when the config has ``privacy:``."""
    cls = PrivateSiteRun if config.privacy is not None else SiteRun
    return cls(config, meta, rounds=rounds, local_epochs=local_epochs)
