"""ONNX export and onnxruntime inference (the ``[onnx]`` extra).

``medtune export MODEL_DIR --format onnx [--quantize int8]`` writes the encoder and head of a trained
model as an ONNX graph beside it (``MODEL_DIR/onnx/model.onnx``; ``model.int8.onnx`` when quantised)
plus ``export.json`` describing the graphs; the tokenizer and ``config.json`` stay where they are.
``medtune.load(MODEL_DIR, mode="onnx")`` (or ``"onnx-int8"``) then runs that graph with onnxruntime
behind the same ``Predictor``: tokenisation, windowing and decoding are the PyTorch path's own code.

What goes into the graph:

- ``ner-emissions`` (the NER task's ``onnx_graph``): ``input_ids, attention_mask, word_index -> emissions`` (float logits at word positions, as
  ``TokenTaggingModel.emissions``). CRF transition scores stay outside the graph: they are only used by
  the numpy Viterbi and are read from ``model.safetensors``.
- ``classification-chunk-features`` (classification): ``input_ids, attention_mask[, token_type_ids] -> chunk_features`` (one feature vector
  per chunk, as ``SequenceClassificationModel.chunk_features``). Pooling chunks per document
  (``scatter_reduce`` amax/mean, which opset 17 cannot express) and the linear classifier run in
  PyTorch at inference time, with the saved classifier weights: the same operations as the torch model.

The export is ``torch.onnx.export`` with ``dynamo=False``, opset 17, dynamic batch/sequence axes.
int8 is onnxruntime dynamic quantisation of the MatMul weights, per channel (per-tensor scales drift
too far from fp32 on these encoders). Every file is written atomically; ``export.json`` records a
hash of ``model.safetensors`` so a graph exported from older weights is refused at load time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import logging
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import numpy as np
import torch

from safetensors import safe_open
from transformers import AutoConfig, AutoTokenizer

import medtune
from medtune.errors import ConfigError, MissingExtraError, ModelError
from medtune.fileutils import atomic_path
from medtune.models.store import WEIGHTS_NAME, load_model, read_meta
from medtune.tasks import TASKS, task_class

OPSET = 17
ONNX_DIRNAME = "onnx"
FP32_NAME = "model.onnx"
INT8_NAME = "model.int8.onnx"
META_NAME = "export.json"
FORMAT_VERSION = 1
QUANT_OP_TYPES = ["MatMul"]
QUANTIZATIONS = ("int8",)


# --------------------------------------------------------------------------- the optional extra
def require_onnxruntime(feature: str = "ONNX export"):
    """``onnxruntime``, or a ``MissingExtraError`` saying which extra to install."""
    try:
        import onnxruntime
    except ImportError:
        raise MissingExtraError(feature, "onnx") from None
    return onnxruntime


def _require_onnx():
    try:
        import onnx
    except ImportError:
        raise MissingExtraError("ONNX export", "onnx") from None
    return onnx


# --------------------------------------------------------------------------- helpers
def weights_digest(model_dir: str | Path) -> str:
    digest = hashlib.sha256()
    with open(Path(model_dir) / WEIGHTS_NAME, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime's quantizer advises pre-processing on the root logger; not needed for these graphs."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class _NerGraph(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, word_index):
        return self.model.emissions(input_ids, attention_mask, word_index)


class _ChunkGraph(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        states = self.model.encode(input_ids, attention_mask, token_type_ids)
        return self.model.chunk_features(states, attention_mask).float()


NER_GRAPH = "ner-emissions"
CHUNK_GRAPH = "classification-chunk-features"
#: the graph kinds a task can name as its ``onnx_graph`` -> the module that wraps the model for export
GRAPHS: dict[str, type[torch.nn.Module]] = {NER_GRAPH: _NerGraph, CHUNK_GRAPH: _ChunkGraph}


def _example_inputs(graph_kind: str, config: Any, use_types: bool, batch: int = 2,
                    seq: int = 12) -> dict[str, torch.Tensor]:
    """Inputs to trace with: the second row is padded, so the attention-mask path is recorded."""
    gen = torch.Generator().manual_seed(0)
    vocab = int(getattr(config, "vocab_size", 100))
    input_ids = torch.randint(5, max(vocab, 6), (batch, seq), generator=gen)
    attention = torch.ones(batch, seq, dtype=torch.long)
    attention[1, seq // 2:] = 0
    inputs = {"input_ids": input_ids, "attention_mask": attention}
    if graph_kind == NER_GRAPH:
        words = seq // 2
        word_index = torch.arange(1, words + 1).repeat(batch, 1)
        word_index[1, words // 2:] = 0
        inputs["word_index"] = word_index
    elif use_types:
        types = torch.zeros(batch, seq, dtype=torch.long)
        types[:, seq // 3:] = 1
        inputs["token_type_ids"] = types * attention
    return inputs


def _graph_spec(graph_kind: str, use_types: bool) -> tuple[list[str], list[str], dict[str, dict[int, str]]]:
    seq_axes = {0: "batch", 1: "sequence"}
    if graph_kind == NER_GRAPH:
        inputs = ["input_ids", "attention_mask", "word_index"]
        outputs = ["emissions"]
        axes = {"input_ids": seq_axes, "attention_mask": seq_axes, "word_index": {0: "batch", 1: "words"},
                "emissions": {0: "batch", 1: "words"}}
    else:
        inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if use_types else [])
        outputs = ["chunk_features"]
        axes = {name: seq_axes for name in inputs}
        axes["chunk_features"] = {0: "chunks"}
    return inputs, outputs, axes


# --------------------------------------------------------------------------- export
def export_onnx(model_dir: str | Path, *, quantize: str | None = None, output: str | Path | None = None,
                check: bool = True) -> dict[str, Path]:
    """Export a trained model directory to ONNX; returns ``{"fp32": path[, "int8": path]}``.

    ``output`` defaults to ``MODEL_DIR/onnx``. ``check`` compares onnxruntime with PyTorch on a probe
    batch of a shape other than the traced one and refuses a graph that disagrees.
    """
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(f"unknown quantization '{quantize}'", fix=f"use one of: {', '.join(QUANTIZATIONS)}")
    ort = require_onnxruntime("ONNX export")
    onnx = _require_onnx()
    model_dir = Path(model_dir)
    model, _tokenizer, task = load_model(model_dir, device="cpu")
    kind = task.onnx_graph
    if kind not in GRAPHS:
        exportable = sorted(name for name, cls in TASKS.items() if cls.onnx_graph in GRAPHS)
        raise ModelError(f"ONNX export covers {', '.join(exportable)} models; {model_dir} is a '{task.name}' "
                         "model", fix="run it with PyTorch (mode auto, fp32 or bf16)")
    model = model.float().eval()
    out_dir = Path(output) if output is not None else model_dir / ONNX_DIRNAME
    out_dir.mkdir(parents=True, exist_ok=True)
    use_types = kind != NER_GRAPH and getattr(model.config, "type_vocab_size", 0) > 1
    # a wrapper module starts in training mode, and export restores that mode on the whole model
    # afterwards (dropout on): put it in eval mode first
    graph = GRAPHS[kind](model).eval()
    input_names, output_names, axes = _graph_spec(kind, use_types)
    example = _example_inputs(kind, model.config, use_types)

    written: dict[str, Path] = {}
    fp32_path = out_dir / FP32_NAME
    with atomic_path(fp32_path) as tmp, torch.no_grad(), warnings.catch_warnings():
        # the tracer warns about Python branches in transformers' mask code: they are shape checks that
        # hold for every input here (the probe check below runs other shapes through the graph)
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, tuple(example[name] for name in input_names), str(tmp),
                          input_names=input_names, output_names=output_names, dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
        onnx.checker.check_model(str(tmp))
        if check:
            _check_against_torch(ort, tmp, graph, kind, model.config, use_types, input_names)
    written["fp32"] = fp32_path

    quant_info = {}
    if quantize == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        int8_path = out_dir / INT8_NAME
        with atomic_path(int8_path) as tmp, _quiet_root_logger():
            quantize_dynamic(fp32_path, tmp, per_channel=True, weight_type=QuantType.QInt8,
                             op_types_to_quantize=QUANT_OP_TYPES)
        written["int8"] = int8_path
        quant_info[INT8_NAME] = {"method": "onnxruntime dynamic quantization", "weight_type": "int8",
                                 "per_channel": True, "op_types": QUANT_OP_TYPES}

    meta = {
        "format_version": FORMAT_VERSION,
        "task": task.name,
        "graph": kind,
        "inputs": input_names,
        "outputs": output_names,
        "opset": OPSET,
        "files": {"fp32": FP32_NAME, **({"int8": INT8_NAME} if "int8" in written else {})},
        "quantization": quant_info,
        "weights_sha256": weights_digest(model_dir),
        "medtune_version": medtune.__version__,
        "torch_version": torch.__version__,
        "onnxruntime_version": ort.__version__,
    }
    previous = _read_export_meta(out_dir)
    if previous and previous.get("weights_sha256") == meta["weights_sha256"] and "int8" not in written:
        # re-exporting fp32 only keeps a still-valid int8 graph usable
        if (out_dir / INT8_NAME).exists() and previous.get("files", {}).get("int8"):
            meta["files"]["int8"] = INT8_NAME
            meta["quantization"] = previous.get("quantization", {})
    elif "int8" not in written:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(out_dir / INT8_NAME)  # from other weights: never leave a stale graph behind
    with atomic_path(out_dir / META_NAME) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    written["meta"] = out_dir / META_NAME
    return written


def _check_against_torch(ort, path: Path, graph: torch.nn.Module, graph_kind: str, config: Any,
                         use_types: bool, input_names: list[str], tol: float = 1e-3) -> None:
    probe = _example_inputs(graph_kind, config, use_types, batch=3, seq=19)
    session = ort.InferenceSession(str(path), _session_options(ort, 1), providers=["CPUExecutionProvider"])
    got = session.run(None, {name: probe[name].numpy() for name in input_names})[0]
    with torch.no_grad():
        want = graph(*(probe[name] for name in input_names)).float().numpy()
    if got.shape != want.shape or not np.allclose(got, want, atol=tol, rtol=tol):
        diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("nan")
        raise ModelError(f"the exported ONNX graph disagrees with PyTorch (max abs diff {diff:.3g}, "
                         f"shapes {got.shape} vs {want.shape})",
                         fix="report this with the versions of torch, transformers and onnxruntime")


# --------------------------------------------------------------------------- inference
def _session_options(ort, threads: int | None = None):
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def _read_export_meta(onnx_dir: Path) -> dict[str, Any] | None:
    path = onnx_dir / META_NAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


class _OnnxModel:
    """What the task code needs of a model (``eval``, ``parameters``), backed by an ORT session."""

    def __init__(self, session, config: Any, meta: dict[str, Any], quantized: bool) -> None:
        self.session = session
        self.config = config
        self.export_meta = meta
        self.quantized = quantized
        self.input_names = [i.name for i in session.get_inputs()]
        self._device_probe = torch.zeros(())

    def eval(self) -> "_OnnxModel":
        return self

    def train(self, mode: bool = True) -> "_OnnxModel":
        if mode:
            raise ModelError("an ONNX model is for inference only", fix="train with the PyTorch model")
        return self

    def parameters(self) -> Iterator[torch.Tensor]:
        yield self._device_probe  # only ever asked for its device: the CPU

    def to(self, *args, **kwargs) -> "_OnnxModel":
        return self

    def _run(self, **inputs: torch.Tensor | None) -> np.ndarray:
        feeds = {}
        for name in self.input_names:
            value = inputs.get(name)
            if value is None:
                raise ModelError(f"the ONNX graph needs input '{name}'", fix="export the model again")
            feeds[name] = np.ascontiguousarray(value.detach().cpu().numpy(), dtype=np.int64)
        return self.session.run(None, feeds)[0]


class OnnxTokenTaggingModel(_OnnxModel):
    """``emissions(...)`` from the ONNX graph; ``head`` and ``crf`` (transitions) from the saved weights."""

    def __init__(self, session, config, meta, quantized, *, head: str, crf: dict[str, torch.Tensor] | None):
        super().__init__(session, config, meta, quantized)
        self.head = head
        self.crf = SimpleNamespace(**crf) if crf else None

    def emissions(self, input_ids, attention_mask, word_index, token_type_ids=None) -> torch.Tensor:
        out = self._run(input_ids=input_ids, attention_mask=attention_mask, word_index=word_index)
        return torch.from_numpy(out)


class OnnxSequenceClassificationModel(_OnnxModel):
    """``model(**batch)["logits"]``: chunk features from the ONNX graph, pooling + classifier in torch."""

    def __init__(self, session, config, meta, quantized, *, chunk_pooling: str, weight: torch.Tensor,
                 bias: torch.Tensor):
        super().__init__(session, config, meta, quantized)
        self.chunk_pooling = chunk_pooling
        self.classifier = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.classifier.weight.copy_(weight.float())
            self.classifier.bias.copy_(bias.float())
        self.classifier.eval()

    def __call__(self, input_ids, attention_mask, chunk_to_doc, labels=None, token_type_ids=None):
        chunk = torch.from_numpy(self._run(input_ids=input_ids, attention_mask=attention_mask,
                                           token_type_ids=token_type_ids)).float()
        # the pooling of SequenceClassificationModel.forward, unchanged
        n_docs = int(chunk_to_doc.max().item()) + 1
        index = chunk_to_doc.cpu().unsqueeze(-1).expand_as(chunk)
        if self.chunk_pooling == "max":
            pooled = torch.full((n_docs, chunk.size(-1)), float("-inf"), dtype=chunk.dtype)
            pooled = pooled.scatter_reduce(0, index, chunk, reduce="amax", include_self=True)
        else:
            pooled = torch.zeros((n_docs, chunk.size(-1)), dtype=chunk.dtype)
            pooled = pooled.scatter_reduce(0, index, chunk, reduce="mean", include_self=False)
        return {"logits": self.classifier(pooled)}

    forward = __call__


def load_onnx_model(model_dir: str | Path, *, quantized: bool = False, onnx_dir: str | Path | None = None,
                    threads: int | None = None) -> tuple[_OnnxModel, Any, Any]:
    """``(model adapter, tokenizer, task)`` for an exported model directory."""
    ort = require_onnxruntime("ONNX inference")
    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    onnx_dir = Path(onnx_dir) if onnx_dir is not None else model_dir / ONNX_DIRNAME
    export = _read_export_meta(onnx_dir)
    kind = "int8" if quantized else "fp32"
    fix = f"run `medtune export {model_dir} --format onnx{' --quantize int8' if quantized else ''}`"
    if export is None:
        raise ModelError(f"{onnx_dir} holds no ONNX export ({META_NAME} is missing)", fix=fix)
    if export.get("format_version") != FORMAT_VERSION or export.get("task") != meta["task"]:
        raise ModelError(f"the ONNX export in {onnx_dir} does not match this medtune version or task",
                         fix=fix)
    name = export.get("files", {}).get(kind)
    if not name or not (onnx_dir / name).exists():
        raise ModelError(f"{onnx_dir} has no {kind} ONNX graph", fix=fix)
    if not (model_dir / WEIGHTS_NAME).exists():
        raise ModelError(f"{model_dir} has no {WEIGHTS_NAME}", fix="the directory is incomplete: train again")
    if export.get("weights_sha256") != weights_digest(model_dir):
        raise ModelError(f"the ONNX export in {onnx_dir} was made from other weights than "
                         f"{model_dir / WEIGHTS_NAME}", fix=fix)

    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    task = task_class(meta["task"])(meta, tokenizer)
    session = ort.InferenceSession(str(onnx_dir / name), _session_options(ort, threads),
                                   providers=["CPUExecutionProvider"])
    with safe_open(str(model_dir / WEIGHTS_NAME), framework="pt", device="cpu") as weights:
        if export.get("graph", NER_GRAPH if meta["task"] == "ner" else CHUNK_GRAPH) == NER_GRAPH:
            head = meta.get("head", "linear")
            crf = None
            if head == "crf":
                crf = {k: weights.get_tensor(f"crf.{k}") for k in
                       ("transitions", "start_transitions", "end_transitions")}
            model: _OnnxModel = OnnxTokenTaggingModel(session, config, export, quantized, head=head, crf=crf)
        else:
            model = OnnxSequenceClassificationModel(
                session, config, export, quantized, chunk_pooling=meta.get("chunk_pooling", "max"),
                weight=weights.get_tensor("classifier.weight"), bias=weights.get_tensor("classifier.bias"))
    return model, tokenizer, task
