"""One loaded model shared by 8 threads (as in a service) gives exactly the single-threaded results:
nothing a prediction computes is stored on the task or the model."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from medtune.inference import load

HERE = Path(__file__).parent / "fixtures" / "golden"
from helpers import load_module  # noqa: E402

_build = load_module(HERE / "build.py", "golden_models_build")
MODELS, golden_inputs = _build.MODELS, _build.golden_inputs


def _from_eight_threads(nlp, jobs):
    """Each job's predictions computed alone, then every job twice from 8 threads at once (with the
    call's diagnostics)."""
    expected = [[d.to_dict() for d in nlp.pipe(job, batch_size=2)] for job in jobs]

    def run(job):
        predictions = nlp.pipe(job, batch_size=2)
        return [d.to_dict() for d in predictions], dict(predictions.diagnostics)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return expected, list(pool.map(run, jobs * 2))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_eight_threads_share_one_model(name):
    nlp = load(HERE / name, mode="fp32")
    docs = golden_inputs(name)
    # different documents per thread: each thread gets its own rotation, several times over
    jobs = [[docs[(k + j) % len(docs)] for j in range(len(docs))] * 3 for k in range(8)]
    expected, results = _from_eight_threads(nlp, jobs)
    for k, (got, diagnostics) in enumerate(results):
        assert got == expected[k % 8]
        assert all(v >= 0 for v in diagnostics.values())
    assert not hasattr(nlp.task, "skipped") and not hasattr(nlp.task, "unaligned_spans")


def test_eight_threads_share_one_qa_model(tiny_model_dir, tmp_path_factory):
    """The same for extractive QA (no golden fixture: a one-step tiny model is enough to compare)."""
    from helpers import qa_docs
    from medtune.config import RunConfig
    from medtune.io.jsonl import write_jsonl
    from medtune.training import train

    tmp = tmp_path_factory.mktemp("threads-qa")
    write_jsonl(qa_docs(4), tmp / "train.jsonl")
    cfg = RunConfig.from_dict({
        "task": "qa", "base_model": str(tiny_model_dir), "data": {"train": str(tmp / "train.jsonl"), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8, "max_question_tokens": 8, "no_answer": True},
        "training": {"max_steps": 1, "batch_size": 4, "progress_bar": False, "bf16": "false"}})
    nlp = load(train(cfg, tmp / "model").output_dir, mode="fp32")
    docs = [d.copy(annotations=False) for d in qa_docs(6, prefix="t", none_every=3)]
    jobs = [[docs[(k + j) % len(docs)] for j in range(len(docs))] * 2 for k in range(8)]
    expected, results = _from_eight_threads(nlp, jobs)
    for k, (got, diagnostics) in enumerate(results):
        assert got == expected[k % 8] and all(d["spans"] for d in got)
        assert diagnostics["windows"] >= len(jobs[k % 8])
