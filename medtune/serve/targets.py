"""What a service serves: pipelines (``PIPELINE.yaml``) and model directories under names.

``medtune serve note=pipelines/clinical-note.yaml models/ncbi`` serves ``note`` and ``ncbi`` (a target
without ``name=`` is named after the file's stem or the directory). Targets are checked before the
service starts (the path exists, the pipeline file is valid, the directory is a medtune model); the
models themselves are loaded by :meth:`Target.load`, on the target's worker thread.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtune.document import Document
from medtune.errors import MedtuneError
from medtune.models.store import read_meta
from medtune.pipeline.pipeline import Pipeline, is_pipeline_file
from medtune.serve.errors import ServiceError

logger = logging.getLogger("medtune.serve")

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
CARD_LIMIT = 64_000  # characters of a model card shown by /v1/models
WARMUP_TEXT = "Warm-up: no fever."


@dataclass(frozen=True)
class TargetSpec:
    name: str
    path: Path
    kind: str  # "pipeline" or "model"


def parse_targets(items: list[str]) -> list[TargetSpec]:
    """``[name=]path`` items as checked specs; names are unique."""
    if not items:
        raise ServiceError("E630", "nothing to serve", fix="give one or more pipeline YAMLs or model directories, "
                                                            "e.g. `medtune serve note=pipelines/clinical-note.yaml`")
    specs: list[TargetSpec] = []
    for item in items:
        name, sep, rest = item.partition("=")
        if sep and NAME_RE.fullmatch(name):
            path = Path(rest)
        else:
            path = Path(item)
            name = (path.stem if path.suffix in (".yaml", ".yml") else path.name) or "model"
            if not NAME_RE.fullmatch(name):
                name = re.sub(r"[^A-Za-z0-9_.-]", "-", name).strip("-._")[:64] or "model"
        if not path.exists():
            raise ServiceError("E630", f"{path} does not exist", fix="give a pipeline YAML or a model directory "
                                                                    "written by `medtune train`")
        if is_pipeline_file(path):
            kind = "pipeline"
        elif path.is_dir():
            read_meta(path)  # a ModelError (E400) when it is not a medtune model directory
            kind = "model"
        else:
            raise ServiceError("E630", f"{path} is neither a pipeline YAML (.yaml, .yml) nor a model directory",
                               fix="give a pipeline YAML or the output directory of `medtune train`")
        if any(s.name == name for s in specs):
            raise ServiceError("E630", f"two targets are named '{name}'",
                               fix="name them apart: `medtune serve a=PATH b=PATH`")
        specs.append(TargetSpec(name, path.resolve(), kind))
    return specs


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def model_info(path: Path) -> dict[str, Any]:
    """What ``/v1/models`` says of a model directory: task, labels, version, metrics, model card.

    Paths are not shown (the directory's name is)."""
    meta = read_meta(path)
    card = None
    readme = path / "README.md"
    if readme.is_file():
        card = readme.read_text(encoding="utf-8", errors="replace")[:CARD_LIMIT]
    return {"directory": path.name, "task": meta.get("task"), "labels": list(meta.get("labels") or []),
            "version": meta.get("version"), "metrics": _read_json(path / "metrics.json"), "card": card}


@dataclass
class Target:
    """One served pipeline or model: its spec, what ``/v1/models`` says of it, and once loaded, its runner."""

    spec: TargetSpec
    mode: str = "auto"
    model_batch_size: int = 32
    info: dict[str, Any] = field(default_factory=dict)
    pipeline: Pipeline | None = None
    predictor: Any = None

    def __post_init__(self) -> None:
        if self.spec.kind == "pipeline":
            self.pipeline = Pipeline.from_yaml(self.spec.path)  # validates the file; models load later
        self.info = self._describe()

    @property
    def name(self) -> str:
        return self.spec.name

    def _describe(self) -> dict[str, Any]:
        if self.pipeline is None:
            info = model_info(self.spec.path)
            return {"name": self.name, "kind": "model", **info}
        components, labels = [], []
        for comp in self.pipeline.components:
            entry: dict[str, Any] = {"kind": comp.kind, "name": comp.name}
            backend = getattr(comp.config, "backend", None)
            if backend is not None:
                entry["backend"] = backend
            models = []
            for path in comp.model_paths:
                try:
                    models.append(model_info(path))
                except MedtuneError as err:  # a model not trained yet: loading will say so
                    models.append({"directory": path.name, "error": err.code})
            if models:
                entry["models"] = models
            if comp.kind == "ner":
                for m in models:
                    labels.extend(lab for lab in m.get("labels", []) if comp.wanted(lab) and lab not in labels)
            components.append(entry)
        return {"name": self.name, "kind": "pipeline", "task": "pipeline", "description": self.pipeline.config.description,
                "pipeline": self.pipeline.config.name, "labels": labels, "components": components}

    def load(self) -> None:
        """Load every model (a pipeline's components load on first use: here, before serving)."""
        if self.pipeline is not None:
            for comp in self.pipeline.components:
                comp.load()
        else:
            import medtune

            self.predictor = medtune.load(self.spec.path, mode=self.mode, batch_size=self.model_batch_size)
            self.info["precision"] = self.predictor.precision

    def run(self, docs: list[Document]) -> list[Document]:
        """Annotate a batch; inputs are not modified; results in input order."""
        if self.pipeline is not None:
            return list(self.pipeline.pipe(docs, batch_size=max(len(docs), self.pipeline.config.batch_size)))
        return list(self.predictor.pipe([d.copy() for d in docs]))

    def warm_up(self) -> None:
        self.run([Document(id="warm-up", text=WARMUP_TEXT)])
