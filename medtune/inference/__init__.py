"""Applying models: ``predictor`` (``medtune.load``), ``batching`` (the one buffered, length-sorted
prediction loop), ``ensemble`` (probability-averaging ensembles) and ``onnx`` (export, onnxruntime)."""

from medtune.inference.ensemble import load_ensemble
from medtune.inference.predictor import MODES, ONNX_MODES, TORCH_MODES, Predictor, check_mode, load

__all__ = ["MODES", "ONNX_MODES", "TORCH_MODES", "Predictor", "check_mode", "load", "load_ensemble"]
