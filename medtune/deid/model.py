"""The PHI NER model: load it with its recall-first bias, predict PHI spans, tune the bias on dev.

A PHI model is an ordinary medtune NER model (``configs/deid.yaml``). Its decoding bias
``outside_weight`` (in (0, 1]; 1.0 = plain decoding) adds ``log(outside_weight)`` to the ``O`` tag's
log-probability of every word before Viterbi, so below 1 decoding prefers PHI: (transitions aside) a
word stays ``O`` only while ``outside_weight * P(O)`` beats the probability of its best PHI tag, a
threshold on the non-PHI probability. The weight is a
per-call copy of the task (``Task.with_trust``), or stored in the model meta (``outside_weight`` in
``config.json``'s ``medtune`` section, written by ``medtune deid-tune``).

:func:`tune_outside_weight` chooses the weight on dev documents: the largest (most precise) weight
whose binary token recall, alone or in union with rule spans, reaches a target.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtune.deid.evaluate import binary_token_recall
from medtune.deid.not_phi import drop_not_phi
from medtune.document import Document, Span
from medtune.errors import ConfigError, ModelError
from medtune.fileutils import atomic_write
from medtune.inference.predictor import Predictor, load
from medtune.tasks.ner import NerTask, check_outside_weight

#: The default sweep, from 1.0 (no bias) down to 1e-6, four steps per decade.
DEFAULT_WEIGHTS: tuple[float, ...] = tuple(round(10 ** (-k / 4), 10) for k in range(25))


def _ner_task(predictor: Predictor, where: Any) -> NerTask:
    if not isinstance(predictor.task, NerTask):
        raise ModelError(f"{where} is a '{predictor.task.name}' model; PHI detection needs a NER model",
                         fix="train one with `medtune train configs/deid.yaml`")
    return predictor.task


def load_phi_model(path: str | Path, outside_weight: float | None = None, *, mode: str = "auto",
                   batch_size: int = 16, device: str | None = None) -> Predictor:
    """A loaded PHI NER model (``medtune.load``) decoding with ``outside_weight`` (None: the weight
    stored in the model, 1.0 when there is none). The predictor's task is a copy: other predictors of
    the same directory are not affected."""
    predictor = load(path, mode=mode, batch_size=batch_size, device=device)
    task = _ner_task(predictor, path)
    if outside_weight is not None:
        predictor.task = task.with_trust(outside_weight=check_outside_weight(outside_weight))
    return predictor


def predict_phi(predictor: Predictor, docs: Sequence[Document], batch_size: int = 16) -> list[list[Span]]:
    """The PHI spans the model finds in each document (on ``doc.text``; the documents are not changed).

    Span labels are the model's own (corpus) types; ``score`` is the model's probability;
    ``attributes["source"] = "model"``. Span ``text`` is left empty: PHI is not copied around.
    """
    _ner_task(predictor, "the predictor")
    out: list[list[Span]] = []
    for pred in predictor.pipe(list(docs), batch_size=batch_size):
        out.append([Span(start=s.start, end=s.end, label=s.label, score=s.score,
                         attributes={**s.attributes, "source": "model"}) for s in pred.spans])
    return out


@dataclass
class TuneResult:
    """What :func:`tune_outside_weight` chose and the sweep behind it."""

    weight: float
    reached: bool  # False: no weight of the sweep reached the target; ``weight`` is the best-recall one
    target_recall: float
    table: list[dict[str, float]] = field(default_factory=list)  # weight, recall, precision (per row)
    with_rules: bool = False
    not_phi: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"weight": self.weight, "reached": self.reached, "target_recall": self.target_recall,
                "with_rules": self.with_rules, "not_phi": self.not_phi, "table": [dict(row) for row in self.table]}


def _union(a: Sequence[Span], b: Sequence[Span]) -> list[Span]:
    return [*a, *b]


def tune_outside_weight(predictor: Predictor, dev_docs: Sequence[Document], target_recall: float,
                        rules_spans: Sequence[Sequence[Span]] | None = None, *,
                        weights: Sequence[float] = DEFAULT_WEIGHTS, batch_size: int = 16,
                        refine: int = 8, not_phi: bool = True) -> TuneResult:
    """The largest weight of ``weights`` whose binary token recall on ``dev_docs`` (gold spans = their
    PHI) reaches ``target_recall``; with ``rules_spans`` (one list per document) the recall of the
    union of model and rules. The model runs once: each weight only decodes again.

    ``refine`` more weights, evenly spaced in log scale, are then tried between the chosen weight and
    the next larger one of the sweep (which missed the target), so that the choice is not a whole
    sweep step more eager than it needs to be. When no weight reaches the target, ``reached`` is False
    and ``weight`` is the one with the best recall (ties: the larger weight). ``not_phi``: the model's
    spans lose what :func:`medtune.deid.not_phi.drop_not_phi` drops, as :class:`PhiDetector` does.
    """
    if not 0.0 < target_recall <= 1.0:
        raise ConfigError(f"the target recall must be in (0, 1], not {target_recall}", fix="e.g. 0.98")
    if rules_spans is not None and len(rules_spans) != len(dev_docs):
        raise ConfigError(f"{len(rules_spans)} lists of rule spans for {len(dev_docs)} documents",
                          fix="give one list of rule spans per dev document, in the same order")
    grid = sorted({check_outside_weight(w, "a swept outside_weight") for w in weights}, reverse=True)
    if not grid:
        raise ConfigError("no weights to sweep", fix="give at least one weight in (0, 1]")
    docs = list(dev_docs)
    task = _ner_task(predictor, "the predictor")
    crf = task.crf_params(predictor.model)
    predictor.model.eval()
    scored = []
    for start in range(0, len(docs), max(64, batch_size * 4)):  # the buffering Task.predict does
        chunk = docs[start:start + max(64, batch_size * 4)]
        scored.extend(task.word_scores(predictor.model, chunk, batch_size=batch_size, device=predictor.device,
                                       bf16=predictor.bf16))
    def measure(weight: float) -> dict[str, float]:
        spans = [task.decode(doc, wt, sc, crf, weight).spans for doc, (wt, sc) in zip(docs, scored)]
        if not_phi:
            spans = [drop_not_phi(doc.text, s) for doc, s in zip(docs, spans)]
        if rules_spans is not None:
            spans = [_union(m, r) for m, r in zip(spans, rules_spans)]
        recall, precision = binary_token_recall(docs, spans)
        return {"weight": weight, "log10_weight": round(math.log10(weight), 4), "recall": recall,
                "precision": precision}

    table = [measure(weight) for weight in grid]
    reaching = [row for row in table if row["recall"] >= target_recall]
    larger = [w for w in grid if reaching and w > max(r["weight"] for r in reaching)]
    if refine > 0 and larger:  # between the chosen weight and the smallest larger one, which missed
        low, high = math.log10(max(r["weight"] for r in reaching)), math.log10(min(larger))
        between = [10 ** (low + (high - low) * k / (refine + 1)) for k in range(1, refine + 1)]
        table = sorted(table + [measure(w) for w in between], key=lambda r: -r["weight"])
        reaching = [row for row in table if row["recall"] >= target_recall]
    if reaching:
        chosen, reached = max(reaching, key=lambda r: r["weight"]), True
    else:
        chosen, reached = max(table, key=lambda r: (r["recall"], r["weight"])), False
    return TuneResult(weight=chosen["weight"], reached=reached, target_recall=target_recall, table=table,
                      with_rules=rules_spans is not None, not_phi=not_phi)


def store_outside_weight(model_dir: str | Path, weight: float, tuning: dict[str, Any] | None = None) -> None:
    """Save ``weight`` as the model's decoding bias (``config.json`` ``medtune.outside_weight``) and
    ``tuning`` (e.g. :meth:`TuneResult.to_dict` and the data it was tuned on) in ``metrics.json``
    under ``outside_weight``. Both files are rewritten atomically."""
    weight = check_outside_weight(weight)
    model_dir = Path(model_dir)
    config_file, metrics_file = model_dir / "config.json", model_dir / "metrics.json"
    hf_config = _read_json(config_file)
    section = hf_config.setdefault("medtune", {})
    if section.get("task", "ner") != "ner":
        raise ModelError(f"{model_dir} is a '{section.get('task')}' model; outside_weight is a NER setting",
                         fix="give the directory of a NER (PHI) model")
    section["outside_weight"] = weight
    with atomic_write(config_file) as handle:
        json.dump(hf_config, handle, indent=2)
    if tuning is not None:
        metrics = _read_json(metrics_file) if metrics_file.exists() else {}
        metrics["outside_weight"] = tuning
        with atomic_write(metrics_file) as handle:
            json.dump(metrics, handle, indent=2)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        raise ModelError(f"{path} is missing or not readable JSON",
                         fix="give a model directory written by `medtune train`") from None
    if not isinstance(value, dict):
        raise ModelError(f"{path} is not a JSON object", fix="restore the model directory, or train again")
    return value
