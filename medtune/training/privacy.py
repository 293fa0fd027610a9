"""Differentially private fine-tuning: DP-SGD (Opacus) for any task config with a ``privacy:`` section.

``train()`` runs :class:`PrivateTrainingRun` when ``config.privacy`` is set (``RUN_CLASSES``). It keeps the
stages of :class:`~medtune.training.run.TrainingRun` and changes five of them:

* ``__init__``      refuses, before anything is loaded, options that would break the guarantee
                    (:func:`check_private_config`); needs the ``privacy`` extra (Opacus)
* ``build_model``   freezes the position and token-type embeddings (and the word embeddings unless
                    ``freeze_embeddings: false``) and the pooler, and refuses layers Opacus cannot clip per
                    example (batch norm, a CRF, weights used outside their layer)
* ``encode``        one *unit* per training document (or per value of ``unit_field``) holding all of its
                    features: windows, chunks, candidates -- the unit is what is clipped and sampled
* ``build_trainer`` the privacy plan (:func:`plan_privacy`: the noise multiplier from the target epsilon,
                    delta, sampling rate and steps, by Opacus' ``get_noise_multiplier``), checked against
                    the checkpoint when resuming, and the ``PrivateTrainer`` of ``dp_trainer.py`` with the
                    budget callback
* ``finish``        adds ``privacy`` (epsilon spent, delta, noise, steps...) to metrics.json and the card

The model directory is an ordinary one: the hooks are removed after training, the weights are the model's
own. docs/privacy.md says what is and is not covered.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from medtune.config import DPConfig, RunConfig
from medtune.document import Document
from medtune.errors import ConfigError, MissingExtraError, quote_id
from medtune.tasks import Task
from medtune.training.run import PRIVACY_STATE, RUN_CLASSES, Fitted, Prepared, TrainingRun
from medtune.training.trainer import FeatureDataset

logger = logging.getLogger(__name__)

EXTRA = "privacy"
#: Renyi orders of the RDP accountant: Opacus' defaults and larger ones (tighter at epsilon 8 and above)
RDP_ALPHAS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [80, 96, 128, 192, 256, 512]


def require_opacus() -> None:
    try:
        import opacus  # noqa: F401
    except ImportError:
        raise MissingExtraError("privacy: (DP-SGD training)", EXTRA) from None


# --------------------------------------------------------------------------- accounting
def _accountant_kwargs(accountant: str) -> dict[str, Any]:
    return {"alphas": RDP_ALPHAS} if accountant == "rdp" else {}


@contextlib.contextmanager
def _quiet_accountant() -> Iterator[None]:
    """RDP at a large epsilon warns that its best order is the largest one: the bound is valid, only a
    little loose (the prv accountant is the tighter one)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        yield


def epsilon_spent(noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str) -> float:
    """Epsilon after ``steps`` steps of the Poisson-subsampled Gaussian mechanism (Opacus' accountant)."""
    if steps <= 0:
        return 0.0
    from opacus.accountants import create_accountant

    acc = create_accountant(mechanism=accountant)
    acc.history = [(noise_multiplier, sample_rate, steps)]
    with _quiet_accountant():
        return float(acc.get_epsilon(delta=delta, **_accountant_kwargs(accountant)))


def noise_multiplier_for(epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str) -> float:
    """The smallest noise multiplier (within Opacus' search tolerance, 0.01 in epsilon) whose ``steps``
    steps spend at most ``epsilon`` (Opacus' ``get_noise_multiplier``)."""
    from opacus.accountants.utils import get_noise_multiplier

    try:
        with _quiet_accountant():
            return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate,
                                              steps=steps, accountant=accountant, **_accountant_kwargs(accountant)))
    except ValueError:
        raise ConfigError(f"privacy.dp.epsilon {epsilon} cannot be reached in {steps} steps at sampling rate "
                          f"{sample_rate:.4g}, whatever the noise",
                          fix="raise privacy.dp.epsilon, train fewer steps (training.epochs), or use more "
                          "training documents") from None


@dataclass(frozen=True)
class PrivacyPlan:
    """What a private run will do, fixed before its first step (and saved in every checkpoint)."""

    epsilon: float
    delta: float
    delta_rule: str
    max_grad_norm: float
    accountant: str
    unit: str
    units: int
    expected_batch_size: int
    sample_rate: float
    steps: int
    noise_multiplier: float

    def epsilon_after(self, steps: int) -> float:
        return epsilon_spent(self.noise_multiplier, self.sample_rate, steps, self.delta, self.accountant)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_privacy(dp: DPConfig, units: int, batch_size: int, epochs: float, max_steps: int = -1) -> PrivacyPlan:
    """Sampling rate q = batch_size / units; steps as the Trainer counts them (``max_steps``, else
    ceil(epochs * int(1 / q))); delta (auto: 1 / (10 units)); the noise multiplier for the target epsilon."""
    if batch_size >= units:
        raise ConfigError(f"training.batch_size {batch_size} is not below the number of privacy units ({units})",
                          fix="lower training.batch_size (Poisson sampling draws each unit with probability "
                          "batch_size / units), or train on more documents")
    sample_rate = batch_size / units
    steps = max_steps if max_steps > 0 else math.ceil(epochs * max(int(1 / sample_rate), 1))
    if dp.delta == "auto":
        delta, rule = 1.0 / (10 * units), "auto: 1 / (10 N)"
    else:
        delta, rule = float(dp.delta), "given"
        if delta >= 1.0 / units:
            raise ConfigError(f"privacy.dp.delta {delta:.3g} is not below 1 / N = {1.0 / units:.3g} (N = {units} "
                              "units): a mechanism may then publish a whole training document with that probability",
                              fix="use delta: auto (1 / (10 N)) or a smaller delta")
    sigma = noise_multiplier_for(dp.epsilon, delta, sample_rate, steps, dp.accountant)
    unit = f"the documents sharing metadata.{dp.unit_field}" if dp.unit_field else "one training document"
    return PrivacyPlan(epsilon=dp.epsilon, delta=delta, delta_rule=rule, max_grad_norm=dp.max_grad_norm,
                       accountant=dp.accountant, unit=unit, units=units, expected_batch_size=batch_size,
                       sample_rate=sample_rate, steps=steps, noise_multiplier=sigma)


def check_resumed_plan(checkpoint: str | None, plan: PrivacyPlan) -> None:
    """A resumed private run must continue the plan its checkpoint was written under."""
    if checkpoint is None:
        return
    path = Path(checkpoint) / PRIVACY_STATE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ConfigError(f"--resume: {checkpoint} has no readable {PRIVACY_STATE}: it was not written by a "
                          "private run with this plan", fix="drop --resume to train privately from the beginning "
                          "(or remove the privacy: section to resume the non-private run)") from None
    differ = sorted(k for k, v in plan.as_dict().items() if saved.get(k) != v)
    if differ:
        raise ConfigError(f"--resume: the privacy plan differs from the checkpoint's in {', '.join(differ)}",
                          fix="resume with the privacy: and training: settings and data of the first run, or drop "
                          "--resume to train from the beginning")


# --------------------------------------------------------------------------- refusals
def _set(options: Any, name: str) -> Any:
    return getattr(options, name, None)


def check_private_config(config: RunConfig) -> None:
    """Refuse, naming the field and the fix, every option under which DP-SGD would not hold for the unit."""
    tc, m = config.training, config.model
    refusals = [
        (tc.gradient_accumulation_steps != 1, "training.gradient_accumulation_steps",
         "sums several Poisson batches into one noisy step, which the accountant does not count",
         ("set it to 1: training.batch_size is the expected (logical) batch, and privacy.dp.physical_batch_size "
          "bounds the memory of one forward pass")),
        (tc.group_by_length, "training.group_by_length",
         "builds batches from the documents' lengths; DP-SGD needs Poisson sampling",
         "set it to false (or leave it out: a private run samples by Poisson sampling)"),
        (_set(m, "head") == "crf", "model.head",
         "crf: the CRF's transition scores have no per-example gradient in Opacus", "use head: linear"),
        (bool(_set(m, "negatives_from_model")), "model.negatives_from_model",
         "mines negatives with a model that may have trained on the same documents, outside the accountant",
         "remove it"),
        (bool(_set(m, "distant_negatives")), "model.distant_negatives",
         ("marks mentions of other training documents in each document, so one document changes the others' "
          "examples"), "remove it"),
        (_set(m, "negative_ratio") is not None, "model.negative_ratio",
         ("subsamples negatives by counts over the whole training set, so one document changes which examples "
          "of the others are kept"), "remove it (every candidate of a document is part of its unit)"),
        (_set(m, "class_weights") == "balanced", "model.class_weights",
         "balanced: the weights are counted over all training documents and are not private",
         "use class_weights: none"),
        (m.labels is None and not _set(m, "relation_schema"), "model.labels",
         "is read from the training documents, and the model publishes it (a label of one note reveals it)",
         "list the label set in model.labels"),
        (hasattr(m, "relation_schema") and m.relation_schema is None, "model.relation_schema",
         "is read from the training relations and published with the model", "list the triples in model.relation_schema"),
        (hasattr(m, "multi_label") and m.multi_label is None, "model.multi_label",
         "is decided from the training documents' labels", "set model.multi_label to true or false"),
        (_world_size() > 1, "the launcher (torchrun / accelerate launch)",
         "runs DDP, whose per-process Poisson batches and noise the accountant does not cover",
         "train a private model in one process"),
    ]
    for bad, field, why, fix in refusals:
        if bad:
            raise ConfigError(f"privacy: {field} {why}", fix=fix)


def _world_size() -> int:
    value = os.environ.get("WORLD_SIZE", "1").strip()
    return int(value) if value.isdigit() else 1


def freeze_public_parts(model: nn.Module, *, word_embeddings: bool, head_only: bool = False,
                        top_layers: int | None = None) -> list[str]:
    """Freeze what stays as pretrained in a private run (public weights): every embedding table of the
    encoder but the word embeddings (position ids come from a shared buffer that per-example clipping
    cannot read), the word embeddings too when ``word_embeddings``, and the unused pooler; with
    ``head_only``, the whole encoder (only the task head is trained); with ``top_layers`` N, everything of
    the encoder but its top N transformer layers. The names."""
    encoder = getattr(model, "encoder", model)
    option = "head_only" if head_only else "train_top_layers" if top_layers is not None else None
    if option and encoder is model:  # else the task head would be frozen with the encoder
        raise ConfigError(f"privacy: dp.{option} needs a model with an encoder and a task head; this one has "
                          "no encoder part", fix=f"remove dp.{option}")
    if head_only:
        for p in encoder.parameters():
            p.requires_grad_(False)
        return ["encoder"]
    if top_layers is not None:
        return _freeze_below_top_layers(encoder, top_layers)
    words = encoder.get_input_embeddings() if hasattr(encoder, "get_input_embeddings") else None
    frozen = []
    for name, module in encoder.named_modules():
        is_table = isinstance(module, nn.Embedding) and (module is not words or word_embeddings)
        if is_table or name == "pooler":
            for p in module.parameters():
                p.requires_grad_(False)
            frozen.append(name)
    return frozen


def transformer_layers(encoder: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """The encoder's stack of transformer layers (``encoder.layer`` in BERT-like models): the longest
    ``nn.ModuleList`` whose name ends in ``layer`` or ``layers``; None when there is none."""
    stacks = [(name, module) for name, module in encoder.named_modules()
              if isinstance(module, nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layer", "layers")]
    return max(stacks, key=lambda item: len(item[1])) if stacks else None


def _freeze_below_top_layers(encoder: nn.Module, top_layers: int) -> list[str]:
    stack = transformer_layers(encoder)
    if stack is None:
        raise ConfigError("privacy: dp.train_top_layers needs an encoder with a stack of transformer layers "
                          "(encoder.layer); this model has none", fix="remove dp.train_top_layers")
    name, layers = stack
    if top_layers > len(layers):
        raise ConfigError(f"privacy: dp.train_top_layers is {top_layers} but the encoder has {len(layers)} "
                          "layers", fix=f"set dp.train_top_layers to at most {len(layers)}, or remove it")
    trained = {id(p) for layer in list(layers)[len(layers) - top_layers:] for p in layer.parameters()}
    frozen: list[str] = []  # module names: "embeddings", "encoder.layer.0", ...
    for param_name, p in encoder.named_parameters():
        if id(p) not in trained:
            p.requires_grad_(False)
            inside = param_name[len(name) + 1:].split(".", 1)[0] if param_name.startswith(name + ".") else None
            module = f"{name}.{inside}" if inside is not None else param_name.split(".", 1)[0]
            if module not in frozen:
                frozen.append(module)
    logger.info("DP-SGD trains the top %d of %d layers (%s) and the head", top_layers, len(layers), name)
    return frozen


def check_private_model(model: nn.Module) -> None:
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        kinds = sorted({type(e).__name__ for e in errors})
        raise ConfigError(f"privacy: the model has layers that mix examples of a batch or that Opacus cannot clip "
                          f"per example ({', '.join(kinds)}; e.g. batch norm)",
                          fix="use a base model with layer norm only (BERT-like encoders)")


# --------------------------------------------------------------------------- units
class UnitDataset(FeatureDataset):
    """Training units: item ``i`` is the list of features (windows, chunks, candidates) of unit ``i``;
    ``features`` holds all of them, in order."""

    def __init__(self, units: list[list[dict[str, Any]]]) -> None:
        super().__init__([f for unit in units for f in unit])
        self.units = units

    def __len__(self) -> int:
        return len(self.units)

    def __getitem__(self, i: int) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.units[i]


def unit_groups(docs: list[Document], unit_field: str | None) -> list[list[int]]:
    """The training documents (indices) of each privacy unit, in order of first appearance."""
    if unit_field is None:
        return [[i] for i in range(len(docs))]
    groups: dict[str, list[int]] = {}
    for i, doc in enumerate(docs):
        if unit_field not in doc.metadata:
            raise ConfigError(f"privacy.dp.unit_field {quote_id(unit_field)}: training document {i} (0-based) has "
                              "no such metadata field", fix="give every training document the field, or remove "
                              "privacy.dp.unit_field (each document is then its own unit)")
        key = json.dumps(doc.metadata[unit_field], sort_keys=True, default=str)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


@contextlib.contextmanager
def one_warning_per_message(prefix: str = "medtune.tasks") -> Iterator[None]:
    """Hold back the task loggers' records while documents are encoded one at a time; then log each
    distinct warning once, with how often it came (info records are dropped)."""
    counts: Counter = Counter()
    first: dict[tuple[str, Any], logging.LogRecord] = {}

    class Hold(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.levelno >= logging.WARNING:
                key = (record.name, record.msg)
                counts[key] += 1
                first.setdefault(key, record)
            return False

    hold = Hold()
    names = [n for n in list(logging.root.manager.loggerDict) if n == prefix or n.startswith(prefix + ".")]
    loggers = [logging.getLogger(n) for n in names]
    for lg in loggers:
        lg.addFilter(hold)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(hold)
    for key, n in counts.items():
        record = first[key]
        logging.getLogger(record.name).log(record.levelno, "%s (the first of %d such warnings: a private run "
                                           "encodes each document on its own)", record.getMessage(), n)


def encode_units(task: Task, docs: list[Document], groups: list[list[int]]) -> UnitDataset:
    """Each document encoded on its own (so nothing of one document reaches another's examples), its
    features gathered under its unit."""
    with one_warning_per_message():
        per_doc = [task.encode_for_training([doc]) for doc in docs]
    dataset = UnitDataset([[f for i in group for f in per_doc[i]] for group in groups])
    if not dataset.features:
        raise ConfigError("privacy: the training documents give no training example",
                          fix="check the training data and model.max_length")
    return dataset


# --------------------------------------------------------------------------- the run
class PrivateTrainingRun(TrainingRun):
    """A :class:`TrainingRun` with DP-SGD; ``train()`` chooses it when ``config.privacy`` is set."""

    handles_privacy = True

    def __init__(self, config: RunConfig, *args: Any, **kwargs: Any) -> None:
        if config.privacy is None:
            raise ConfigError("PrivateTrainingRun needs a privacy: section", fix="add privacy: {dp: {epsilon: 8}}")
        super().__init__(config, *args, **kwargs)
        require_opacus()
        check_private_config(config)
        self.dp = config.privacy.dp
        self.plan: PrivacyPlan | None = None
        self.frozen: list[str] = []
        self._checkpoint: str | None = None
        self._hooks: Any = None
        self._budget: Any = None
        self._unit_loss: Any = None

    def check_output(self, out: Path) -> str | None:
        self._checkpoint = super().check_output(out)
        return self._checkpoint

    def build_model(self, prepared: Prepared) -> nn.Module:
        from medtune.training.dp_trainer import unit_loss_for

        model = super().build_model(prepared)
        self.frozen = freeze_public_parts(model, word_embeddings=self.dp.freeze_embeddings,
                                          head_only=self.dp.head_only,
                                          top_layers=self.dp.train_top_layers)
        check_private_model(model)
        self._unit_loss = unit_loss_for(model, prepared.task.name)
        return model

    def encode(self, prepared: Prepared) -> UnitDataset:
        docs = prepared.docs["train"]
        return encode_units(prepared.task, docs, unit_groups(docs, self.dp.unit_field))

    def build_trainer(self, prepared: Prepared, model: nn.Module, dataset: FeatureDataset, output_dir: Path, *,
                      evaluate: bool, **argument_overrides: Any):
        from medtune.training.dp_trainer import BudgetCallback, UnitNormHooks

        self.plan = self.make_plan(len(dataset), argument_overrides.get("max_steps", self.config.training.max_steps))
        check_resumed_plan(self._checkpoint, self.plan)
        logger.info("DP-SGD plan: %d units (%s), sampling rate %.4g, %d steps, noise multiplier %.4f, clipping "
                    "norm %g, target epsilon %g at delta %.3g (%s accountant)", self.plan.units, self.plan.unit,
                    self.plan.sample_rate, self.plan.steps, self.plan.noise_multiplier, self.plan.max_grad_norm,
                    self.plan.epsilon, self.plan.delta, self.plan.accountant)
        try:
            self._hooks = UnitNormHooks(model)
        except NotImplementedError as err:  # a trainable layer with buffers
            raise ConfigError(f"privacy: Opacus cannot clip this model per example ({type(err).__name__})",
                              fix="use a BERT-like base model") from None
        self._budget = BudgetCallback(self.plan)
        return super().build_trainer(prepared, model, dataset, output_dir, evaluate=evaluate,
                                     **{"max_grad_norm": 0.0, **argument_overrides})

    def make_plan(self, units: int, max_steps: int) -> PrivacyPlan:
        """The privacy plan for ``units`` training units (an extension point, like the ``make_*`` methods)."""
        tc = self.config.training
        return plan_privacy(self.dp, units, tc.batch_size, tc.epochs, max_steps)

    def make_callbacks(self, evaluate: bool) -> list:
        return super().make_callbacks(evaluate) + [self._budget]

    def make_trainer(self, **kwargs: Any):
        from medtune.training.dp_trainer import PrivateTrainer

        kwargs.pop("make_sampler", None)  # Poisson sampling replaces the sampler
        return PrivateTrainer(plan=self.plan, hooks=self._hooks, unit_loss=self._unit_loss,
                              physical_batch_size=self.dp.physical_batch_size, **kwargs)

    def fit(self, trainer, resume_from: str | None = None) -> Fitted:
        try:
            return super().fit(trainer, resume_from)
        finally:  # the model directory holds the plain model: no hooks, no Opacus attributes
            self._hooks.remove_hooks()
            self._hooks.cleanup()

    def extra_metrics(self, prepared: Prepared, fitted: Fitted) -> dict[str, Any]:
        plan, steps = self.plan, fitted.trainer.state.global_step
        spent = plan.epsilon_after(steps)
        logger.info("DP-SGD done: %d steps, epsilon spent %.4f of %g (delta %.3g, %s accountant, unit: %s)",
                    steps, spent, plan.epsilon, plan.delta, plan.accountant, plan.unit)
        return {"privacy": {
            "mechanism": "DP-SGD: Poisson sampling of units, per-unit clipping, Gaussian noise (Opacus accountant)",
            "epsilon_spent": round(spent, 4), "epsilon_target": plan.epsilon, "delta": plan.delta,
            "delta_rule": plan.delta_rule, "accountant": plan.accountant, "unit": plan.unit, "units": plan.units,
            "noise_multiplier": round(plan.noise_multiplier, 6), "max_grad_norm": plan.max_grad_norm,
            "sample_rate": round(plan.sample_rate, 6), "expected_batch_size": plan.expected_batch_size,
            "steps": steps, "planned_steps": plan.steps, "stopped_by_budget": bool(self._budget.stopped_by_budget),
            "empty_batches": getattr(fitted.trainer, "empty_batches", 0), "frozen": self.frozen,
            "not_covered": ["the dev split (epoch selection, thresholds, calibration)",
                            "the label set and options given in the config",
                            "the pretrained encoder and tokenizer (public)",
                            "the number of training documents and windows in metrics.json"],
        }}

    def fit_steps(self, *args: Any, **kwargs: Any) -> Any:
        raise ConfigError("fit_steps (a fixed number of steps, federated rounds) does not account privacy",
                          fix="train a private model with medtune.training.train()")


RUN_CLASSES["privacy"] = PrivateTrainingRun
