"""Model cards: what a model is, what it was trained on, how well it does and what it must not do.

Cards hold metrics and provenance only, never note text.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

import medtune
from medtune import datasets
from medtune.config import RunConfig
from medtune.errors import DatasetNotFoundError, ModelError
from medtune.models.files import WEIGHTS_NAME
from medtune.models.store import read_meta
from medtune.trust.report import groups_markdown

LIMITS = (
    "This model assists, it does not replace clinical judgement. It was fine-tuned on the data named "
    "above and inherits its biases and its domain (e.g. biomedical abstracts are not clinical notes); "
    "expect lower accuracy on other text types, institutions, languages or populations. Validate it on "
    "your own data before any use that touches patient care, and keep a human in the loop."
)


def _data_provenance(config: Any) -> tuple[str, str, str]:
    data = config.data
    if data.name is None:
        return f"files: train={data.train}, dev={data.dev}, test={data.test}", "as stated by the data owner", ""
    try:
        spec = datasets.get_spec(data.name)
        return (f"named corpus `{data.name}`: {spec.description}", spec.licence, spec.citation)
    except Exception:  # provenance is best effort: a card is still written
        return f"named corpus `{data.name}`", "see the corpus documentation", ""


def corpus_intended_use(config: Any) -> str | None:
    """What the training corpus's spec says a model trained on it must tell its users (None: nothing)."""
    name = config.data.name
    if name is None:
        return None
    try:
        return datasets.get_spec(name).intended_use
    except DatasetNotFoundError:  # a corpus of a later version: the card is still written
        return None


def decoding_lines(meta: dict[str, Any]) -> list[str]:
    """A NER model's recall-first decoding bias, or a classifier's cut on its positive label, when it has one."""
    lines = []
    cut = meta.get("positive_threshold")
    if cut is not None:
        lines.append(f"- decision: `{meta.get('positive_label')}` when its probability is at least {cut:.6g}, "
                     "else the other label (`model.decision: dev_threshold`: the cut of best F1 on the dev split)")
    weight = meta.get("outside_weight")
    if weight is None or float(weight) == 1.0:
        return lines
    return [*lines, f"- decoding: recall-first, outside_weight {weight} (log({weight}) added to the O tag's "
            "log-probability before Viterbi; chosen on dev, see `metrics.json` `outside_weight`)"]


def file_sha256(path: str | Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def data_lines(config: Any, metrics: dict[str, Any]) -> list[str]:
    """Name, version (source commit) or checksums, licence and the splits used, one bullet each."""
    data = config.data
    lines = []
    counts = {"train": (metrics.get("train") or {}).get("documents")}
    for split in ("dev", "test"):
        section = metrics.get(split) or {}
        counts[split] = section.get("documents") or (section.get("counts") or {}).get("documents")
    if data.name is not None:
        try:
            spec = datasets.get_spec(data.name)
            lines.append(f"- corpus: `{data.name}`, version: {spec.source}")
            lines += [f"- file `{f.path}`: sha256 {f.sha256}" for f in spec.files]
            lines.append(f"- licence: {spec.licence}")
            lines.append(f"- split: {spec.split_note}")
        except Exception:  # best effort
            lines.append(f"- corpus: `{data.name}`")
    else:
        for split in ("train", "dev", "test"):
            path = getattr(data, split)
            if path:
                digest = file_sha256(path) if Path(path).is_file() else None
                lines.append(f"- {split}: `{path}`" + (f", sha256 {digest}" if digest else ""))
        lines.append("- licence: as stated by the data owner")
    used = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    if used:
        lines.append(f"- documents used: {used}")
    return lines


def _ci_line(section: dict[str, Any]) -> str:
    ci = section.get("ci")
    if not ci or "f1" not in ci:
        return ""
    f1 = ci["f1"]
    return (f"\n\nheadline F1 {f1['value']:.4f}, {int(round(ci.get('level', 0.95) * 100))}% bootstrap interval "
            f"[{f1['low']:.4f}, {f1['high']:.4f}] ({ci.get('resamples')} resamples of documents)")


def calibration_lines(meta: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    summary = metrics.get("calibration")
    if not meta.get("calibration") and not summary:
        lines = ["Scores are the model's raw probabilities (no calibration was fitted): do not read 0.9 as "
                 "right nine times in ten without checking (`medtune evaluate` reports the calibration error)."]
    else:
        lines = [f"Scores are calibrated: {summary.get('description') if summary else meta['calibration'].get('method')}."]
        if summary:
            before, after = summary["dev"]["before"], summary["dev"]["after"]
            lines.append(f"Dev split, {before['n']} {summary.get('unit', 'predictions')}: ECE {before['ece']:.4f} "
                         f"-> {after['ece']:.4f}, Brier {before['brier']:.4f} -> {after['brier']:.4f} "
                         "(equal-mass bins; the test figures are in `medtune evaluate`).")
    if meta.get("abstain_below") is not None:
        lines.append(f"Predictions scoring under {meta['abstain_below']} are marked `abstained: true` for a human "
                     "to review.")
    return [" ".join(lines)]


def privacy_lines(metrics: dict[str, Any]) -> list[str]:
    """The differential-privacy guarantee of a model trained with ``privacy:`` (DP-SGD), else nothing."""
    p = metrics.get("privacy")
    if not p:
        return []
    stopped = ", stopped by the budget" if p.get("stopped_by_budget") else ""
    return ["## Privacy", "",
            (f"Trained with differential privacy (DP-SGD): ε = {p['epsilon_spent']:.2f} spent of a target "
            f"{p['epsilon_target']}, at δ = {p['delta']:.3g} ({p['delta_rule']}; {p['accountant']} accountant). "
            f"The unit protected is {p['unit']} ({p['units']} units): the model is almost as likely with or without "
            f"any one of them. Noise multiplier {p['noise_multiplier']:.4g}, clipping norm {p['max_grad_norm']}, "
            f"Poisson sampling rate {p['sample_rate']:.4g} (expected batch {p['expected_batch_size']}), "
            f"{p['steps']} of {p['planned_steps']} planned steps{stopped}. Not covered: "
            f"{'; '.join(p.get('not_covered') or [])}. See docs/privacy.md for how to read ε."), ""]


def federated_lines(metrics: dict[str, Any]) -> list[str]:
    """A federated model's provenance (``medtune federate``): sites by name and document count, rounds,
    strategy and the epsilon each site spent under DP-SGD; never text."""
    f = metrics.get("federated")
    if not f:
        return []
    lines = ["## Federated training", "",
             (f"Trained with federated learning ({f['framework']}, {f['mode']} mode): {f['strategy']}"
              + (f" (proximal mu {f['proximal_mu']})" if f.get("proximal_mu") is not None else "")
              + f", {f['rounds']} rounds of {f['local_epochs']} local epochs, sites weighted by {f['weighting']}; "
              f"secure aggregation: {'on' if f.get('secure_aggregation') else 'off'}. Only model weights and "
              "counts left the sites."), "",
             "| site | documents | steps per round | epsilon spent (DP-SGD) |", "|---|---|---|---|"]
    for s in f["sites"]:
        p = s.get("privacy")
        eps = f"{p['epsilon_spent']:.2f} of {p['epsilon_target']} (delta {p['delta']:.3g})" if p else "not private"
        lines.append(f"| {s['name']} | {s['documents']} | {s.get('steps_per_round', '')} | {eps} |")
    if f.get("not_covered_by_dp"):
        lines += ["", f"Not covered by the privacy accounting: {f['not_covered_by_dp']}"]
    return lines + [""]


def _weights_lines(weights_sha256: str | None) -> list[str]:
    if weights_sha256 is None:
        return ["`medtune card MODEL` prints this card with the sha256 of `model.safetensors`."]
    return [f"- `model.safetensors` sha256: {weights_sha256}"]


def _table(rows: dict[str, dict[str, Any]], columns: list[str]) -> str:
    lines = ["| type | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        cells = [f"{row[c]:.4f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _coding_markdown(result: dict[str, Any]) -> str:
    """A coding model's figures: the official CodiEsp MAP first, then F1 at the threshold and P/R@k."""
    cat = result.get("category") or {}
    head = (f"MAP {result['map']:.4f} (official CodiEsp definition, {result.get('map_documents')} documents); "
            f"category MAP {cat.get('map', 0.0):.4f}; micro P/R/F1 at the tuned threshold {result['precision']:.4f} / "
            f"{result['recall']:.4f} / {result['f1']:.4f}; macro F1 {result['macro_f1']:.4f}")
    rows = {"code": result, "category": cat}
    table = _table(rows, ["map", "f1", "p@5", "r@5", "p@8", "r@8", "p@15", "r@15"])
    unseen = result.get("unseen")
    tail = (f"\n\n{unseen['never_in_training']} of the {unseen['distinct_gold_codes']} distinct gold codes never "
            "occurred in training" if unseen else "")
    evidence = result.get("evidence") or {}
    tail += (f"; evidence (CodiEsp-X) P/R/F1 {evidence['precision']:.4f} / {evidence['recall']:.4f} / "
             f"{evidence['f1']:.4f}" if evidence.get("scored") else "; evidence not scored: " + str(evidence.get(
                 "reason", "no gold evidence")))
    return head + "\n\n" + table + tail


def _labels_line(labels: list[str]) -> str:
    return ", ".join(labels) if len(labels) <= 40 else f"{len(labels)} labels ({', '.join(labels[:10])}, ...)"


def metrics_markdown(result: dict[str, Any]) -> str:
    if "map" in result and "category" in result:  # clinical coding
        return _coding_markdown(result)
    if "exact_match" in result:  # extractive QA (SQuAD normalisation)
        head = (f"exact match {result['exact_match']:.4f}; F1 {result['f1']:.4f} ({result['questions']} questions, "
                "official SQuAD normalisation)")
        groups = {k: result[k] for k in ("has_answer", "no_answer") if k in result}
        return head + ("\n\n" + _table(groups, ["exact_match", "f1", "questions"]) if groups else "")
    if "per_type" in result:
        head = (f"strict micro P/R/F1 {result['precision']:.4f} / {result['recall']:.4f} / {result['f1']:.4f}; "
                f"strict macro F1 {result['strict']['macro']['f1']:.4f}; lenient micro F1 "
                f"{result['lenient']['micro']['f1']:.4f}")
        return head + "\n\n" + _table(result["per_type"], ["precision", "recall", "f1", "lenient_f1", "support"])
    if "accuracy" not in result:  # relations (mention or id level), assertion
        level = f" ({result['level']})" if "level" in result else ""
        head = (f"micro P/R/F1{level} {result['precision']:.4f} / {result['recall']:.4f} / {result['f1']:.4f}; "
                f"macro F1 {result['macro']['f1']:.4f}")
        return head + "\n\n" + _table(result["per_label"], ["precision", "recall", "f1", "support"])
    head = (f"headline F1 {result['f1']:.4f}; accuracy {result['accuracy']:.4f}; macro F1 "
            f"{result['macro_f1']:.4f}")
    return head + "\n\n" + _table(result["per_label"], ["precision", "recall", "f1", "support"])


def model_card(config: Any, meta: dict[str, Any], metrics: dict[str, Any], *,
               weights_sha256: str | None = None) -> str:

    data, licence, citation = _data_provenance(config)
    intended = corpus_intended_use(config)
    train = metrics.get("train", {})
    tc = config.training
    parts = [
        f"# medtune {meta['task']} model",
        "",
        f"- base model: `{config.base_model}`",
        f"- task: {meta['task']} (head: {meta.get('head')}), labels: {_labels_line(meta['labels'])}",
        f"- training data: {data}",
        f"- data licence: {licence}",
        f"- medtune version: {medtune.__version__}; created {datetime.now(timezone.utc).date().isoformat()}",
        f"- training: {train.get('epochs')} epochs, {train.get('runtime_s')} s on {train.get('cpu')} "
        f"({train.get('threads')} threads, bf16={train.get('bf16')}), seed {config.training.seed}",
        "",
        "## Intended use",
        "",
        f"Research and engineering use on text like the training data: {meta['task']} with the labels above. "
        "The resolved training configuration is in `medtune_config.yaml`, the metrics in `metrics.json`. "
        "It assists a human reader (pre-annotation, triage, search); it does not make clinical decisions."
        + (f" {intended}" if intended else ""),
        "",
        "## Data",
        "",
        *data_lines(config, metrics),
        "",
        "## Configuration",
        "",
        f"- max_length {meta.get('max_length')}, stride {meta.get('stride')}; learning rate {tc.learning_rate}, "
        f"batch size {tc.batch_size}, epochs {tc.epochs}, seed {tc.seed}",
        f"- calibration: {config.calibration.method if getattr(config, 'calibration', None) else 'none'}; "
        f"abstain_below: {getattr(config, 'abstain_below', None)}",
        *decoding_lines(meta),
        *[str(line) for line in meta.get("card_lines") or []],  # what the task says about itself
        "- everything else: `medtune_config.yaml`",
        "",
    ]
    for split in ("dev", "test"):
        if split in metrics:
            section = metrics[split] if "ci" in metrics[split] or split != "test" else {
                **metrics[split], "ci": metrics.get("test_ci")}
            parts += [f"## Metrics on the {split} split", "", metrics_markdown(metrics[split]) + _ci_line(section), ""]
    parts += ["## Calibration and abstention", "", *calibration_lines(meta, metrics), ""]
    parts += privacy_lines(metrics)
    parts += federated_lines(metrics)
    for report in (metrics.get("subgroups") or {}).values():
        parts += ["## Subgroups (test split)", "", groups_markdown(report), ""]
    parts += ["## Weights", "", *_weights_lines(weights_sha256), ""]
    parts += ["## Limits", "", LIMITS + (f" {intended}" if intended else ""), ""]
    if citation:
        parts += ["## Data citation", "", citation, ""]
    return "\n".join(parts)


def card_for_directory(model_dir: str | Path) -> str:
    """The card of a model directory, rebuilt from its files, with the sha256 of its weights."""
    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    try:
        config = RunConfig.from_yaml(model_dir / "medtune_config.yaml")
        metrics = json.loads((model_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelError(f"{model_dir}: medtune_config.yaml or metrics.json cannot be read ({type(err).__name__})",
                         fix="restore the model directory, or train again") from None
    if not isinstance(metrics, dict):
        raise ModelError(f"{model_dir / 'metrics.json'} is not an object", fix="restore it from the trained model")
    return model_card(config, meta, metrics, weights_sha256=file_sha256(model_dir / WEIGHTS_NAME))


def pipeline_models(pipeline_file: str | Path) -> list[tuple[str, Path]]:
    """(component kind, model directory) of every component of a pipeline YAML that loads a model."""
    path = Path(pipeline_file)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        raise ModelError(f"{path} is not readable YAML", fix="give a pipeline YAML (see pipelines/)") from None
    out = []
    for component in raw.get("components") or [] if isinstance(raw, dict) else []:
        if not isinstance(component, dict):
            continue
        models = component.get("model")
        for model in models if isinstance(models, list) else [models] if models else []:
            out.append((str(component.get("kind")), (path.parent / str(model)).resolve()))
    return out


def pipeline_card(pipeline_file: str | Path) -> str:
    """A pipeline's card: its components and each component model's card."""
    path = Path(pipeline_file)
    parts = [f"# medtune pipeline `{path.name}`", "",
             "This pipeline assists, it does not replace clinical judgement. Each model below inherits the "
             "biases and domain of its training data; validate the whole pipeline on your own data before any "
             "use that touches patient care, and keep a human in the loop.", ""]
    for kind, model_dir in pipeline_models(path):
        parts.append(f"## component {kind}: `{model_dir}`")
        parts.append("")
        if (model_dir / "config.json").is_file() and (model_dir / "medtune_config.yaml").is_file():
            card = card_for_directory(model_dir)
            parts.append("\n".join(("#" + line) if line.startswith("#") else line for line in card.splitlines()))
        elif (model_dir / "README.md").is_file():
            parts.append(model_dir.joinpath("README.md").read_text(encoding="utf-8", errors="replace"))
        else:
            parts.append("(no model card: the directory is missing or not a trained medtune model)")
        parts.append("")
    return "\n".join(parts)
