"""medtune: fine-tune, evaluate and apply pretrained language models to medical text."""

from __future__ import annotations

__version__ = "0.1.0"

from medtune.document import Document, Relation, Span  # noqa: E402


def load(path, **kwargs):
    """Load a trained model directory; see ``medtune.inference.load``."""
    from medtune.inference import load as _load

    return _load(path, **kwargs)


def __getattr__(name):
    if name == "Pipeline":  # lazy: importing medtune stays light
        from medtune.pipeline import Pipeline

        return Pipeline
    if name == "deid":  # medtune.deid(...): the callable de-identification package
        import importlib

        return importlib.import_module("medtune.deid")
    raise AttributeError(f"module 'medtune' has no attribute {name!r}")


__all__ = ["Document", "Span", "Relation", "Pipeline", "load", "deid", "__version__"]
