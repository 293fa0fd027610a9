"""Inference speed of a fine-tuned NER model: medtune's modes against the transformers pipeline.

    .venv/bin/python benchmarks/inference_speed.py --model models/ncbi-disease

Over the NCBI-disease test abstracts (title + abstract, ~315 WordPiece tokens each) it times, in one
process and on the same threads:

- the baseline, ``transformers.pipeline("token-classification", aggregation_strategy="simple")`` on a
  plain ``AutoModelForTokenClassification`` built from the medtune model directory (encoder weights
  from the ``encoder.*`` keys, the linear classifier, ``id2label`` = the model's tag names), at batch
  sizes 1, 8 and 16; the best one is the reference. It tags sub-word tokens and aggregates them (no
  word-level decoding, no constrained Viterbi), so its spans can differ; its F1 is reported separately.
  Documents longer than the encoder's 512 positions go through the pipeline's own ``stride`` windows.
- medtune ``fp32``, ``bf16`` (autocast), ``onnx`` and ``onnx-int8`` (``medtune export`` is run first
  when the model directory has no current export), at batch sizes 32 and 8.

For every run: documents/s, tokens/s (document WordPiece tokens, special tokens excluded, the same
count for every row), speed-up against the pipeline's best, strict span F1 on the test set
(``medtune.evaluation.metrics.span_metrics``), for medtune's fast modes the number of documents whose spans differ
from medtune fp32 and the span-level agreement F1 with fp32, and the fraction of the CPU's peak FLOP/s.

FLOPs model (useful work; padding is not counted): for a sequence of T tokens (special tokens
included) through an encoder with L layers of width d,

    FLOPs(T) = 2 * P * T + 4 * L * d * T^2

where P is the number of encoder parameters that take part in matrix products (all parameters except
the token/position/type embedding tables, which are lookups, and the unused pooler) plus the
classifier head; ``2 * P * T`` counts a multiply and an add per weight per token, ``4 * L * d * T^2``
the two attention products (Q K^T and A V) of every layer. Each medtune row sums it over the windows
medtune actually runs (``max_length`` tokens, overlapping by ``stride``); the pipeline row over its
sequences. Peak FLOP/s is measured here with a large ``torch.matmul`` in fp32 and in bf16 on the same
threads; every row is reported as a fraction of both.

Results: ``benchmarks/results/inference_speed.json`` (written atomically) and a markdown table.
Run it on an otherwise idle machine: it warns when the load average says something else is running.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

from _env import ROOT  # noqa: E402  (sets up sys.path and the environment)

import torch  # noqa: E402

TARGET_SPEEDUP = 3.0
TARGET_F1_DROP = 0.005


# --------------------------------------------------------------------------- hardware
def peak_flops(dtype: torch.dtype, n: int = 2048, min_seconds: float = 1.0) -> float:
    """FLOP/s of a large square matmul on torch's threads (best of a few timed repetitions)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    for _ in range(2):
        torch.matmul(a, b)
    best = float("inf")
    reps, start = 0, time.perf_counter()
    while reps < 3 or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
        reps += 1
    return 2 * n ** 3 / best


# --------------------------------------------------------------------------- FLOPs model
def flops_model(model_dir: Path) -> dict:
    from safetensors import safe_open
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    params = 0
    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as weights:
        for key in weights.keys():
            if ".embeddings." in key or ".pooler." in key or key.startswith("crf."):
                continue
            params += _numel(weights.get_slice(key).get_shape())
    return {"matmul_params": params, "layers": config.num_hidden_layers, "hidden": config.hidden_size,
            "formula": "FLOPs(T) = 2*P*T + 4*L*d*T^2 per sequence of T tokens (P: parameters in matrix "
                       "products = all but embedding tables and pooler, plus the classifier)"}


def _numel(shape) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def seq_flops(lengths: list[int], fm: dict) -> float:
    p, layers, d = fm["matmul_params"], fm["layers"], fm["hidden"]
    return float(sum(2 * p * t + 4 * layers * d * t * t for t in lengths))


def medtune_sequence_lengths(task, docs) -> list[int]:
    """Token counts (special tokens included) of the windows medtune runs for these documents."""
    from medtune.tasks.ner import plan_windows

    extra = len(task.prefix_ids) + len(task.suffix_ids)
    lengths = []
    for doc in docs:
        wt = task._words(doc)
        for s, e in plan_windows(wt.word_first, len(wt.input_ids), task.capacity, task.stride):
            lengths.append(e - s + extra)
    return lengths


# --------------------------------------------------------------------------- the baseline
def hf_token_classifier(model_dir: Path):
    """A plain AutoModelForTokenClassification with the medtune model's encoder and classifier."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForTokenClassification

    from medtune.models.store import read_meta
    from medtune.tasks.ner import tag_names

    meta = read_meta(model_dir)
    if meta["task"] != "ner":
        raise SystemExit(f"{model_dir} is a {meta['task']} model; this benchmark needs an NER model")
    if meta.get("head", "linear") != "linear":
        print("note: CRF model; the pipeline baseline uses its emissions only (argmax per token)")
    tags = tag_names(meta["labels"], meta.get("tag_scheme", "IOB2"))
    config = AutoConfig.from_pretrained(model_dir)
    config.num_labels = len(tags)
    config.id2label = dict(enumerate(tags))
    config.label2id = {t: i for i, t in enumerate(tags)}
    model = AutoModelForTokenClassification.from_config(config)
    prefix = model.base_model_prefix
    state = load_file(str(model_dir / "model.safetensors"))
    mapped = {}
    for key, value in state.items():
        if key.startswith("encoder."):
            mapped[f"{prefix}.{key[len('encoder.'):]}"] = value
        elif key.startswith("classifier."):
            mapped[key] = value
    result = model.load_state_dict(mapped, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("position_ids")]
    if missing:
        raise SystemExit(f"baseline model: weights missing for {missing[:5]}")
    return model.eval()


def pipeline_docs(outputs, docs):
    from medtune.document import Span

    preds = []
    for doc, ents in zip(docs, outputs):
        pred = doc.copy(annotations=False)
        for e in ents:
            start, end = int(e["start"]), int(e["end"])
            pred.spans.append(Span(start=start, end=end, label=e["entity_group"], text=doc.text[start:end],
                                   score=float(e["score"])))
        preds.append(pred)
    return preds


# --------------------------------------------------------------------------- timing
def timed(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def span_keys(doc):
    return sorted(s.key() for s in doc.spans)


def agreement(ref, pred) -> tuple[int, float]:
    """(documents whose spans differ, span-level F1 of ``pred`` against ``ref``)."""
    differ, tp, n_ref, n_pred = 0, 0, 0, 0
    for a, b in zip(ref, pred):
        ka, kb = set(span_keys(a)), set(span_keys(b))
        differ += ka != kb
        tp += len(ka & kb)
        n_ref += len(ka)
        n_pred += len(kb)
    f1 = 2 * tp / (n_ref + n_pred) if n_ref + n_pred else 1.0
    return differ, f1


def ensure_export(model_dir: Path, need_int8: bool) -> None:
    import medtune
    from medtune.errors import ModelError
    from medtune.inference.onnx import export_onnx

    try:
        medtune.load(model_dir, mode="onnx-int8" if need_int8 else "onnx")
    except ModelError:
        print(f"exporting {model_dir} to ONNX (fp32{' + int8' if need_int8 else ''}) ...", flush=True)
        export_onnx(model_dir, quantize="int8" if need_int8 else None)


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "ncbi-disease")
    parser.add_argument("--docs", type=int, default=0, help="use the first N test documents (0 = all)")
    parser.add_argument("--threads", type=int, default=0, help="torch/onnxruntime threads (0 = torch default)")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per run; the fastest counts")
    parser.add_argument("--modes", default="fp32,bf16,onnx,onnx-int8")
    parser.add_argument("--batch-sizes", default="32,8", help="medtune batch sizes")
    parser.add_argument("--pipeline-batch-sizes", default="1,8,16")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "inference_speed.json")
    args = parser.parse_args(argv)

    import transformers
    from transformers import AutoTokenizer, pipeline

    import medtune
    from medtune import datasets
    from medtune.fileutils import atomic_write
    from medtune.evaluation.metrics import span_metrics
    from medtune.runtime import cpu_has_native_bf16, cpu_name, resolve_bf16

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        print(f"warning: load average {load_before:.1f} before the run: another job is using the CPU, "
              "figures will be low", flush=True)
    modes = [m for m in args.modes.split(",") if m]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    pipe_sizes = [int(b) for b in args.pipeline_batch_sizes.split(",") if b]
    model_dir = args.model
    if not (model_dir / "config.json").exists():
        raise SystemExit(f"{model_dir} is not a model directory: train it first "
                         "(medtune train configs/ncbi-disease.yaml --output models/ncbi-disease)")

    gold = datasets.load("ncbi-disease", split="test")
    if args.docs:
        gold = gold[: args.docs]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    doc_tokens = [len(tokenizer(d.text, add_special_tokens=False, verbose=False)["input_ids"]) for d in gold]
    n_docs, n_tokens = len(gold), int(sum(doc_tokens))
    print(f"{n_docs} documents, {n_tokens} tokens (mean {n_tokens / n_docs:.0f}, max {max(doc_tokens)}), "
          f"{threads} threads, {cpu_name()}", flush=True)

    peak = {"fp32": peak_flops(torch.float32), "bf16": peak_flops(torch.bfloat16)}
    print(f"peak matmul: fp32 {peak['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peak['bf16'] / 1e9:.0f} GFLOP/s", flush=True)
    fm = flops_model(model_dir)

    rows: list[dict] = []

    def add_row(row: dict, seconds: float, preds, lengths: list[int]) -> dict:
        flops = seq_flops(lengths, fm)
        metrics = span_metrics(gold, preds)
        row.update({
            "seconds": round(seconds, 4), "docs_per_s": round(n_docs / seconds, 2),
            "tokens_per_s": round(n_tokens / seconds, 1), "f1": round(metrics["f1"], 4),
            "precision": round(metrics["precision"], 4), "recall": round(metrics["recall"], 4),
            "model_gflop": round(flops / 1e9, 2), "gflop_per_s": round(flops / seconds / 1e9, 2),
            "fraction_of_fp32_peak": round(flops / seconds / peak["fp32"], 4),
            "fraction_of_bf16_peak": round(flops / seconds / peak["bf16"], 4),
        })
        rows.append(row)
        print(f"  {row['system']:9s} {row['mode']:10s} bs {row['batch_size']:3d}: {row['docs_per_s']:7.2f} docs/s "
              f"{row['tokens_per_s']:9.0f} tok/s  f1 {row['f1']:.4f}", flush=True)
        return row

    # ---- baseline: transformers pipeline
    hf_model = hf_token_classifier(model_dir)
    ner_pipe = pipeline("token-classification", model=hf_model, tokenizer=tokenizer,
                        aggregation_strategy="simple", device=-1, stride=64)
    texts = [d.text for d in gold]
    max_len = min(int(tokenizer.model_max_length), int(hf_model.config.max_position_embeddings))
    pipe_lengths = []
    for t in doc_tokens:  # the pipeline's windows: max_len tokens (specials included), overlap 64
        cap, pos = max_len - 2, 0
        while True:
            pipe_lengths.append(min(cap, t - pos) + 2)
            if pos + cap >= t:
                break
            pos += cap - 64
    ner_pipe(texts[:2], batch_size=2)  # warm-up
    pipe_preds = None
    for bs in pipe_sizes:
        seconds, out = timed(lambda: ner_pipe(texts, batch_size=bs), args.repeats)
        preds = pipeline_docs(out, gold)
        pipe_preds = pipe_preds or preds
        add_row({"system": "pipeline", "mode": "fp32", "batch_size": bs}, seconds, preds, pipe_lengths)
    baseline = max((r for r in rows if r["system"] == "pipeline"), key=lambda r: r["docs_per_s"])
    baseline["baseline"] = True
    # the same forward pass with word-level ("first") aggregation, closer to how medtune decodes: its
    # F1 shows how much of the "simple" row's F1 gap is aggregation, not the model
    first_pipe = pipeline("token-classification", model=hf_model, tokenizer=tokenizer,
                          aggregation_strategy="first", device=-1, stride=64)
    seconds, out = timed(lambda: first_pipe(texts, batch_size=baseline["batch_size"]), 1)
    first_preds = pipeline_docs(out, gold)
    add_row({"system": "pipeline", "mode": "fp32 first", "batch_size": baseline["batch_size"],
             "note": "aggregation_strategy='first'; not a baseline candidate"}, seconds, first_preds, pipe_lengths)
    del hf_model, ner_pipe, first_pipe

    # ---- medtune
    if any(m.startswith("onnx") for m in modes):
        ensure_export(model_dir, "onnx-int8" in modes)
    ref_preds = None
    lengths = None
    for mode in modes:
        nlp = medtune.load(model_dir, mode=mode)
        lengths = lengths or medtune_sequence_lengths(nlp.task, gold)
        list(nlp.pipe(gold[:4], batch_size=4))  # warm-up
        for bs in batch_sizes:
            seconds, preds = timed(lambda: list(nlp.pipe(gold, batch_size=bs)), args.repeats)
            row = {"system": "medtune", "mode": mode, "batch_size": bs}
            if mode == "fp32" and ref_preds is None:
                ref_preds = preds
            if ref_preds is not None:
                differ, agree = agreement(ref_preds, preds)
                row.update({"docs_differing_from_fp32": differ, "span_agreement_f1_with_fp32": round(agree, 4)})
            add_row(row, seconds, preds, lengths)
        del nlp

    for row in rows:
        row["speedup_vs_pipeline_best"] = round(row["docs_per_s"] / baseline["docs_per_s"], 2)
    if pipe_preds is not None and ref_preds is not None:
        for row, preds in ((r, pipe_preds if r["mode"] == "fp32" else first_preds)
                           for r in rows if r["system"] == "pipeline"):
            differ, agree = agreement(ref_preds, preds)
            row.update({"docs_differing_from_fp32": differ, "span_agreement_f1_with_fp32": round(agree, 4)})

    def best(mode: str) -> dict | None:
        cands = [r for r in rows if r["system"] == "medtune" and r["mode"] == mode]
        return max(cands, key=lambda r: r["docs_per_s"]) if cands else None

    auto_mode = "bf16" if resolve_bf16("auto", torch.device("cpu")) else "fp32"
    fp32_best = best("fp32")
    default_row = best(auto_mode)
    checks = {}
    if default_row:
        checks["default_mode"] = auto_mode
        checks["default_speedup_vs_pipeline_best"] = default_row["speedup_vs_pipeline_best"]
        checks["default_meets_3x"] = default_row["speedup_vs_pipeline_best"] >= TARGET_SPEEDUP
    if fp32_best:
        checks["f1_drop_vs_fp32"] = {m: round(fp32_best["f1"] - best(m)["f1"], 4)
                                    for m in modes if m != "fp32" and best(m)}
        checks["fast_modes_within_0.5_f1_points"] = all(v <= TARGET_F1_DROP for v in checks["f1_drop_vs_fp32"].values())

    import onnxruntime

    result = {
        "benchmark": "inference_speed",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": str(model_dir),
        "data": {"corpus": "ncbi-disease", "split": "test", "documents": n_docs, "tokens": n_tokens,
                 "mean_tokens": round(n_tokens / n_docs, 1), "max_tokens": max(doc_tokens)},
        "machine": {"cpu": cpu_name(), "threads": threads, "native_bf16": cpu_has_native_bf16(),
                    "load_average_before": round(load_before, 2), "python": platform.python_version(),
                    "torch": torch.__version__, "transformers": transformers.__version__,
                    "onnxruntime": onnxruntime.__version__, "medtune": medtune.__version__},
        "peak_flops": {k: round(v) for k, v in peak.items()},
        "flops_model": fm,
        "repeats": args.repeats,
        "baseline": {"system": "pipeline", "batch_size": baseline["batch_size"],
                     "docs_per_s": baseline["docs_per_s"]},
        "targets": {"default_mode_speedup": TARGET_SPEEDUP, "max_f1_drop": TARGET_F1_DROP},
        "checks": checks,
        "rows": rows,
    }
    with atomic_write(args.output) as handle:
        json.dump(result, handle, indent=2)
        handle.write("\n")
    print()
    print(markdown(result))
    print(f"\nresults written to {args.output}")
    return result


def markdown(result: dict) -> str:
    lines = [
        f"{result['data']['documents']} NCBI-disease test abstracts, {result['data']['tokens']} tokens; "
        f"{result['machine']['threads']} threads on {result['machine']['cpu']}; peak matmul "
        f"{result['peak_flops']['fp32'] / 1e9:.0f} GFLOP/s fp32, {result['peak_flops']['bf16'] / 1e9:.0f} GFLOP/s bf16",
        "",
        "| system | mode | batch | docs/s | tokens/s | vs pipeline best | strict F1 | docs ≠ fp32 | agreement F1 "
        "| GFLOP/s | % fp32 peak | % bf16 peak |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['system']} | {r['mode']} | {r['batch_size']} | {r['docs_per_s']:.1f} | {r['tokens_per_s']:.0f} "
            f"| {r['speedup_vs_pipeline_best']:.2f}x | {100 * r['f1']:.2f} | {r.get('docs_differing_from_fp32', '')} "
            f"| {r.get('span_agreement_f1_with_fp32', '')} | {r['gflop_per_s']:.1f} "
            f"| {100 * r['fraction_of_fp32_peak']:.1f} | {100 * r['fraction_of_bf16_peak']:.1f} |")
    c = result["checks"]
    if "default_mode" in c:
        lines.append("")
        lines.append(f"default mode (auto = {c['default_mode']}): {c['default_speedup_vs_pipeline_best']:.2f}x the "
                     f"pipeline's best (target >= {result['targets']['default_mode_speedup']:.0f}x: "
                     f"{'met' if c['default_meets_3x'] else 'NOT met'})")
    if "f1_drop_vs_fp32" in c:
        drops = ", ".join(f"{m} {100 * v:+.2f}" for m, v in c["f1_drop_vs_fp32"].items())
        lines.append(f"F1 drop vs fp32, points: {drops} (target <= 0.5: "
                     f"{'met' if c['fast_modes_within_0.5_f1_points'] else 'NOT met'})")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
