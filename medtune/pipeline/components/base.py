"""What every pipeline component is: a registered class with its own strict config.

A component takes a list of documents and returns them enriched (spans, attributes, relations, labels,
sentence boundaries): ``process(docs, batch_size=...) -> docs``. Heavy parts (models, lexicons,
linkers) load on first use, so a pipeline can be evaluated on one layer without loading the others.

A new kind is one module: a :class:`ComponentConfig` subclass with ``kind: Literal["mykind"]`` and a
:class:`Component` subclass decorated with ``@register_component``; import the module before loading a
pipeline YAML that names the kind (the built-in kinds are imported by ``medtune.pipeline``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from medtune.document import Document
from medtune.errors import ConfigError, ModelError
from medtune.inference import Predictor, load, load_ensemble
from medtune.models.store import read_meta


class ComponentConfig(BaseModel):
    """Options every component has. Subclasses add their own and narrow ``kind`` to a literal."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    name: str | None = Field(None, description="a name for messages and span sources (default: the kind)")
    labels: list[str] | None = Field(None, description="entity labels this component reads or writes (None = all)")


class ModelComponentConfig(ComponentConfig):
    """A component backed by one model directory written by ``medtune train`` (or several: an ensemble)."""

    model: str | list[str] = Field(description="model directory, relative to the pipeline file; ner and "
                                   "relation also take a list (an ensemble averaging their probabilities)")
    mode: str = Field("auto", description="inference mode (auto, fp32, bf16)")


class Component:
    """A loaded component. Subclasses set ``kind`` and ``config_class`` and implement ``process``."""

    kind: ClassVar[str] = ""
    config_class: ClassVar[type[ComponentConfig]] = ComponentConfig
    #: the task of the model(s) a model component runs (checked on loading); None = not a model component
    task: ClassVar[str | None] = None
    #: whether ``model:`` may list several directories (an ensemble)
    ensembles: ClassVar[bool] = False

    def __init__(self, config: ComponentConfig, base: Path) -> None:
        self.config = config
        self.name = config.name or self.kind
        self.base = base
        models = getattr(config, "model", None)
        if isinstance(models, list) and not (self.ensembles and len(models) >= 2):
            raise ConfigError(f"component '{self.name}': " + (
                "a list of models (an ensemble) needs at least two directories" if self.ensembles else
                f"model is one directory for '{self.kind}'; only ner and relation take a list (an ensemble)"))
        models = models if isinstance(models, list) else [models] if models else []
        self.model_paths = [resolve_path(m, base) for m in models]
        self._impl: Any = None

    @property
    def model_path(self) -> Path | None:
        return self.model_paths[0] if self.model_paths else None

    def load(self) -> Any:
        """The loaded model (or engine); built on first use."""
        if self._impl is None:
            self._impl = self.build()
        return self._impl

    def build(self) -> Any:
        """Load what the component runs; a model component loads its model(s) and checks their task."""
        return self.load_predictor()

    def load_predictor(self) -> Predictor:
        for path in self.model_paths:
            if not path.exists():
                raise ModelError(f"component '{self.name}': model {path} does not exist",
                                 fix="train the pipeline's models with `make models`, or fix the path")
            task = read_meta(path).get("task")
            if task != self.task:
                raise ModelError(f"component '{self.name}' expects a {self.task} model, but {path} "
                                 f"is a '{task}' model", fix="point the component at the right model directory")
        mode = getattr(self.config, "mode", "auto")
        if len(self.model_paths) > 1:
            return load_ensemble(self.model_paths, mode=mode)
        return load(self.model_path, mode=mode)

    def check_order(self, before: list["Component"], source: str) -> None:
        """Raise ConfigError when this component needs another one earlier in the pipeline."""

    def process(self, docs: list[Document], *, batch_size: int = 32) -> list[Document]:
        raise NotImplementedError

    def wanted(self, label: str) -> bool:
        return self.config.labels is None or label in self.config.labels


COMPONENTS: dict[str, type[Component]] = {}
C = TypeVar("C", bound=type)


def register_component(cls: C) -> C:
    """Register a Component subclass under its ``kind`` (a class decorator)."""
    if not cls.kind:
        raise ConfigError(f"component class {cls.__name__} has no kind", fix="set the class attribute kind")
    if cls.kind in COMPONENTS and COMPONENTS[cls.kind] is not cls:
        raise ConfigError(f"a component kind '{cls.kind}' is already registered ({COMPONENTS[cls.kind].__name__})",
                          fix="choose another kind for the new component")
    COMPONENTS[cls.kind] = cls
    return cls


def resolve_path(path: str, base: Path) -> Path:
    """``path`` as written in a pipeline file: relative to the file's folder unless absolute."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base / p).resolve()
