"""Evaluate a model directory on a named corpus or a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medtune.fileutils import atomic_write


def evaluate(model_dir: str | Path, data: str, *, split: str = "test", format: str | None = None,
             errors: int = 0, output: str | Path | None = None, batch_size: int = 32,
             mode: str = "fp32", eval_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Predict ``data`` with the model and score it; the result's ``f1`` is the headline figure."""
    import medtune
    from medtune.data import resolve_documents
    from medtune.evaluation.metrics import span_errors

    nlp = medtune.load(model_dir, mode=mode, batch_size=batch_size)
    gold, source = resolve_documents(data, split, format)
    nlp.task.check_documents(gold, source=source, training=False)
    options = dict(eval_options or {})
    if not options:
        options = _saved_eval_options(Path(model_dir))
    pred = list(nlp.pipe(gold, batch_size=batch_size))
    result = nlp.task.metrics(gold, pred, **options)
    result = {"f1": result.pop("f1"), **result, "model": str(model_dir), "data": source, "mode": nlp.mode}
    if errors and nlp.task.name == "ner":
        result["errors"] = span_errors(gold, pred, errors)
    elif errors and nlp.task.name == "relation":
        from medtune.evaluation.metrics import relation_errors

        result["errors"] = relation_errors(gold, pred, errors)
    elif errors and nlp.task.name == "assertion":
        attr = nlp.task.attribute
        result["errors"] = [
            {"document": g.id, "start": gs.start, "end": gs.end, "gold": gs.attributes.get(attr),
             "predicted": ps.attributes.get(attr)}
            for g, p in zip(gold, pred) for gs, ps in zip(g.spans, p.spans)
            if gs.attributes.get(attr) != ps.attributes.get(attr)][:errors]
    elif errors:
        result["errors"] = [
            {"document": g.id, "gold": g.labels, "predicted": p.labels}
            for g, p in zip(gold, pred) if sorted(g.labels) != sorted(p.labels)][:errors]
    if output is not None:
        with atomic_write(output) as handle:
            json.dump(result, handle, indent=2, ensure_ascii=False)
    return result


def _saved_eval_options(model_dir: Path) -> dict[str, Any]:
    """The eval section of the config the model was trained with (ignore_labels, positive_label)."""
    path = model_dir / "medtune_config.yaml"
    if not path.exists():
        return {}
    import yaml

    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return dict(raw.get("eval") or {})
