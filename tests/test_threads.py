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


@pytest.mark.parametrize("name", sorted(MODELS))
def test_eight_threads_share_one_model(name):
    nlp = load(HERE / name, mode="fp32")
    docs = golden_inputs(name)
    # different documents per thread: each thread gets its own rotation, several times over
    jobs = [[docs[(k + j) % len(docs)] for j in range(len(docs))] * 3 for k in range(8)]
    expected = [[d.to_dict() for d in nlp.pipe(job, batch_size=2)] for job in jobs]

    def run(job):
        predictions = nlp.pipe(job, batch_size=2)
        return [d.to_dict() for d in predictions], dict(predictions.diagnostics)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, jobs * 2))
    for k, (got, diagnostics) in enumerate(results):
        assert got == expected[k % 8]
        assert all(v >= 0 for v in diagnostics.values())
    assert not hasattr(nlp.task, "skipped") and not hasattr(nlp.task, "unaligned_spans")
