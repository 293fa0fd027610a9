"""Model cards: what a model is, what it was trained on, how well it does and what it must not do.

Cards hold metrics and provenance only, never note text.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import medtune

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
        from medtune import datasets

        spec = datasets.get_spec(data.name)
        return (f"named corpus `{data.name}`: {spec.description}", spec.licence, spec.citation)
    except Exception:  # provenance is best effort: a card is still written
        return f"named corpus `{data.name}`", "see the corpus documentation", ""


def _table(rows: dict[str, dict[str, Any]], columns: list[str]) -> str:
    lines = ["| type | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        cells = [f"{row[c]:.4f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def metrics_markdown(result: dict[str, Any]) -> str:
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


def model_card(config: Any, meta: dict[str, Any], metrics: dict[str, Any]) -> str:

    data, licence, citation = _data_provenance(config)
    train = metrics.get("train", {})
    parts = [
        f"# medtune {meta['task']} model",
        "",
        f"- base model: `{config.base_model}`",
        f"- task: {meta['task']} (head: {meta.get('head')}), labels: {', '.join(meta['labels'])}",
        f"- training data: {data}",
        f"- data licence: {licence}",
        f"- medtune version: {medtune.__version__}; created {datetime.now(timezone.utc).date().isoformat()}",
        f"- training: {train.get('epochs')} epochs, {train.get('runtime_s')} s on {train.get('cpu')} "
        f"({train.get('threads')} threads, bf16={train.get('bf16')}), seed {config.training.seed}",
        "",
        "## Intended use",
        "",
        f"Research and engineering use on text like the training data: {meta['task']} with the labels above. "
        "The resolved training configuration is in `medtune_config.yaml`, the metrics in `metrics.json`.",
        "",
    ]
    for split in ("dev", "test"):
        if split in metrics:
            parts += [f"## Metrics on the {split} split", "", metrics_markdown(metrics[split]), ""]
    parts += ["## Limits", "", LIMITS, ""]
    if citation:
        parts += ["## Data citation", "", citation, ""]
    return "\n".join(parts)
