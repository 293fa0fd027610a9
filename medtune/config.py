"""Strict run configurations, loaded from YAML, with dotted command-line overrides.

Unknown keys fail with the key and the valid ones; every run writes its resolved configuration
beside the model so that it can be reproduced.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from medtune.errors import ConfigError
from medtune.models.encoder import DEFAULT_BASE_MODEL
from medtune.tasks import TASKS, TaskOptions
from medtune.tasks.options import StrictModel, drop_foreign_defaults



_Strict = StrictModel


class DataConfig(_Strict):
    """Where the documents come from: a named corpus or files."""

    name: str | None = Field(None, description="named corpus (see `medtune datasets list`)")
    train: str | None = Field(None, description="training file or folder")
    dev: str | None = Field(None, description="development file (early stopping, thresholds)")
    test: str | None = Field(None, description="test file")
    format: str | None = Field(None, description="conll, pubtator, brat, bioc, jsonl, csv or tsv")
    options: dict[str, Any] = Field(default_factory=dict, description="reader options (tag_column, text_column, ...)")
    max_train_docs: int | None = Field(None, ge=1, description="debug knob: use only the first N training documents")
    max_eval_docs: int | None = Field(None, ge=1, description="debug knob: use only the first N dev/test documents")
    empty_train_fraction: float = Field(
        1.0, ge=0.0, le=1.0, description="share of training documents without spans, relations or labels "
        "to keep (chosen by a hash of the document id, so the same ones every run; 0 keeps none); e.g. "
        "ADE's negative sentences")
    empty_dev_fraction: float = Field(
        1.0, ge=0.0, le=1.0, description="the same for the dev split, which picks the best checkpoint: 0 "
        "selects a tagger trained on annotated sentences only by its F1 on annotated sentences (the test "
        "split is never filtered)")

    @model_validator(mode="after")
    def _one_source(self) -> "DataConfig":
        if self.name is None and self.train is None:
            raise ValueError("give either data.name (a named corpus) or data.train (a file)")
        if self.name is not None and self.train is not None:
            raise ValueError("give data.name or data.train, not both")
        return self


# transformers' SchedulerType values, written out so that loading a config does not import transformers
# (seconds); tests/test_training_stages.py checks that the two lists agree
LrScheduler = Literal["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                      "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
                      "warmup_stable_decay", "greedy"]


class TrainingConfig(_Strict):
    epochs: float = Field(3.0, gt=0)
    max_steps: int = Field(-1, description="stop after N optimiser steps (-1 = epochs decide)")
    learning_rate: float = Field(5e-5, gt=0)
    head_learning_rate: float | None = Field(None, gt=0, description="separate LR for head/CRF parameters")
    batch_size: int = Field(16, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    lr_scheduler: LrScheduler = Field(
        "linear", description="learning-rate schedule (the names of transformers' SchedulerType); "
        "cosine_with_min_lr and warmup_stable_decay need lr_scheduler_kwargs")
    lr_scheduler_kwargs: dict[str, float | int | str] = Field(
        default_factory=dict, description="extra arguments of the schedule, e.g. {min_lr: 1.0e-6} for "
        "cosine_with_min_lr, {num_decay_steps: 100} for warmup_stable_decay")
    seed: int = 42
    bf16: Literal["auto", "true", "false"] = Field(
        "auto", description="bf16 autocast: auto = on when the CPU/GPU has native bf16")
    group_by_length: bool = True
    early_stopping_patience: int | None = Field(2, ge=1)
    eval_every_epoch: bool = True
    logging_steps: int = Field(50, ge=1)
    num_threads: int | None = Field(None, ge=1, description="torch threads (None = all cores)")
    malloc_tuning: bool = Field(True, description="keep large freed blocks in the heap (glibc; see medtune.runtime)")
    save_total_limit: int = Field(1, ge=1)
    progress_bar: bool = True
    report_to: str | list[str] = Field(
        "none", description="experiment trackers, passed to the HF TrainingArguments (e.g. tensorboard, "
        "mlflow, wandb; they must be installed); none = no tracker")

    @field_validator("bf16", mode="before")
    @classmethod
    def _bool_to_str(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "true" if value else "false"
        return value


class EvalConfig(_Strict):
    ignore_labels: list[str] = Field(default_factory=list,
                                     description="labels left out of micro/macro F1 (e.g. ChemProt 'false')")
    positive_label: str | None = Field(None, description="binary tasks: headline F1 is this label's F1")


class CalibrationConfig(_Strict):
    """Post-hoc calibration of the model's scores, fitted on the dev split after training."""

    method: Literal["temperature", "platt", "isotonic"] = Field(
        "temperature", description="temperature scaling (one parameter; never reorders scores), platt (slope "
        "and bias on the log-odds; also shifts scores that are too high everywhere) or isotonic regression "
        "(a monotone step function; needs more dev predictions)")


class DPConfig(_Strict):
    """DP-SGD (Opacus): the budget and clipping of a differentially private run (docs/privacy.md)."""

    epsilon: float = Field(gt=0, description="the target epsilon: training stops before spending more")
    delta: float | Literal["auto"] = Field(
        "auto", description="the target delta; auto = 1 / (10 N), N the number of privacy units (training "
        "documents); must be below 1 / N")
    max_grad_norm: float = Field(1.0, gt=0, description="each unit's gradient is clipped to this L2 norm")
    accountant: Literal["prv", "rdp"] = Field(
        "prv", description="privacy accountant: prv (tighter; Opacus' default) or rdp (Renyi DP; faster)")
    unit_field: str | None = Field(
        None, description="a document metadata field (e.g. patient_id, pmid): documents sharing its value "
        "form one privacy unit; None = each document is one unit")
    physical_batch_size: int | None = Field(
        None, ge=1, description="most features (windows, candidates) per forward pass, to bound memory; a "
        "unit's features always go together; None = the whole sampled batch at once")
    freeze_embeddings: bool = Field(
        True, description="keep the word embeddings as pretrained (public; fastest). Position and "
        "token-type embeddings always stay as pretrained in a private run")
    head_only: bool = Field(
        False, description="train the task head only; the whole encoder stays as pretrained (public): a few "
        "thousand noised parameters instead of millions, so far more signal per step, at the price of a "
        "frozen encoder")
    train_top_layers: int | None = Field(
        None, ge=1, description="train the task head and the top N transformer layers only; the embeddings "
        "and the lower layers stay as pretrained (public): fewer noised parameters than the whole encoder, "
        "less frozen than head_only; None = every layer")

    @model_validator(mode="after")
    def _one_freezing_rule(self) -> "DPConfig":
        if self.head_only and self.train_top_layers is not None:
            raise ValueError("set head_only or train_top_layers, not both (head_only trains no layer)")
        return self

    @field_validator("delta")
    @classmethod
    def _delta_range(cls, value: Any) -> Any:
        if value != "auto" and not 0 < value < 1:
            raise ValueError("delta must be in (0, 1), or auto")
        return value


class PrivacyConfig(_Strict):
    dp: DPConfig = Field(description="differentially private training with DP-SGD")


class RunConfig(_Strict):
    """A training run. ``model:`` holds the options of the run's task (``TASK.options_class``)."""

    task: str = Field(description="a registered task: ner, classification, relation, assertion, ...")
    base_model: str = DEFAULT_BASE_MODEL
    data: DataConfig
    model: SerializeAsAny[TaskOptions] = Field(default_factory=TaskOptions)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output_dir: str | None = None
    calibration: CalibrationConfig | None = Field(
        None, description="calibrate the scores on dev after training, e.g. {method: temperature}; None = raw scores")
    abstain_below: float | None = Field(
        None, gt=0, lt=1, description="predictions scoring under this are marked abstained (kept, "
        "`abstained: true`) for a human to review")
    subgroups: list[str] = Field(
        default_factory=list, description="document metadata fields (or `length`) whose groups the model "
        "card reports test metrics for")
    privacy: PrivacyConfig | None = Field(
        None, description="train with differential privacy, e.g. {dp: {epsilon: 8}} (docs/privacy.md); "
        "None = an ordinary run")

    @model_validator(mode="after")
    def _private_sampling(self) -> "RunConfig":
        """A private run samples batches by Poisson sampling, never by length: ``group_by_length`` left at
        its default is turned off (written so in the saved config); set to true, the run refuses it."""
        if self.privacy is not None and "group_by_length" not in self.training.model_fields_set:
            self.training.group_by_length = False
        return self

    # --------------------------------------------------------------- loading
    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> "RunConfig":
        path = Path(path)
        raw = read_yaml_mapping(path, "config file", "give the path of a YAML config (see configs/ for examples)")
        for dotted, value in (overrides or {}).items():
            apply_override(raw, dotted, value)
        return cls.from_dict(raw, source=str(path))

    @field_validator("task")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in TASKS:
            raise ValueError(f"unknown task '{value}'; registered tasks: {', '.join(TASKS)}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _task_options(cls, raw: Any) -> Any:
        """Validate ``model:`` with the options class of the config's task."""
        if isinstance(raw, dict) and raw.get("task") in TASKS:
            options = TASKS[raw["task"]].options_class
            model = raw.get("model")
            if model is None or isinstance(model, dict):
                others = [t.options_class for t in TASKS.values() if t.options_class is not options]
                raw = {**raw, "model": options.model_validate(drop_foreign_defaults(model or {}, options, others))}
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> "RunConfig":
        task = raw.get("task") if isinstance(raw, dict) else None
        if task in TASKS and isinstance(raw.get("model"), dict):
            try:  # the model section first, so that its errors name model.KEY and the task's valid keys
                cls._task_options(raw)
            except ValidationError as err:
                raise ConfigError(_explain(err, source, TASKS[task].options_class, ("model",))) from None
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            raise ConfigError(_explain(err, source)) from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def read_yaml_mapping(path: str | Path, what: str, fix: str) -> dict[str, Any]:
    """The top-level mapping of a YAML file; a missing file, bad YAML (with its line) or a top level
    that is not a mapping raise ConfigError naming the file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what} {path} not found", fix=fix)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML", fix="check indentation and quoting") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return raw


def _valid_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names valid at ``loc`` (a pydantic error location) in ``model``."""
    current: Any = model
    for part in loc[:-1]:
        field = current.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return []
        annotation = field.annotation
        # an optional section (``privacy: PrivacyConfig | None``) names its model inside the union
        annotation = next((a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)),
                          annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            current = annotation
        else:
            return []
    return list(current.model_fields)


def _explain(err: ValidationError, source: str, root: type[BaseModel] | None = None,
             prefix: tuple[str, ...] = ()) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        dotted = ".".join(str(p) for p in prefix + loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            valid = _valid_keys(root or RunConfig, loc)
            near = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            hint = f" Did you mean '{near[0]}'?" if near else ""
            lines.append(f"unknown key '{dotted}'.{hint} Valid keys here: {', '.join(valid)}")
        elif e["type"] == "missing":
            lines.append(f"missing key '{dotted}'")
        else:
            lines.append(f"'{dotted}': {e['msg']}")
    return f"{source}: invalid configuration: " + "; ".join(lines)


def parse_value(text: str) -> Any:
    """Parse a command-line override value as YAML (``5`` -> int, ``true`` -> bool, ``[a, b]`` -> list)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_override(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``raw['a']['b'] = value`` for ``dotted='a.b'``, creating mappings on the way."""
    parts = dotted.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override '{dotted}': '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """Turn ``['--training.epochs', '5', '--model.head=crf']`` into ``{'training.epochs': 5, ...}``."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument '{arg}'", fix="overrides look like --section.key value")
        key = arg[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise ConfigError(f"override '--{key}' has no value", fix="write --section.key value")
            value = args[i + 1]
            i += 2
        out[key] = parse_value(value)
    return out
