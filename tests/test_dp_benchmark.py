"""benchmarks/dp.py: the config of each run (what the child process trains)."""

from __future__ import annotations

from helpers import load_benchmark


def _spec(**extra):
    return {"task": "ner", "epsilon": 8.0, "epochs": 2.0, "max_train_docs": None, "max_eval_docs": None,
            "dp_batch_size": 64, "dp_learning_rate": 5e-2, "max_grad_norm": 1.0, "accountant": "prv",
            "physical_batch_size": 64, "models_dir": "", "head_only": True, "top_layers": None, "unit": "task",
            "decision": "dev_threshold", "audit_docs": 0, **extra}


def test_a_private_run_gets_the_privacy_settings_and_a_base_model_for_every_run(monkeypatch, tmp_path):
    bench = load_benchmark(monkeypatch, "dp.py", "dp_benchmark")
    config, name = bench.run_config(_spec(base_model=str(tmp_path / "public-ner")))
    assert name == "ner-eps8-head"
    assert config.base_model == str(tmp_path / "public-ner")
    dp = config.privacy.dp
    assert dp.epsilon == 8.0 and dp.head_only and config.training.batch_size == 64
    assert config.training.learning_rate == 5e-2 and config.training.epochs == 2.0
    # the non-private run starts from the same encoder, with the shipped recipe
    plain, plain_name = bench.run_config(_spec(epsilon=None, base_model=str(tmp_path / "public-ner")))
    assert plain_name == "ner-non-private" and (plain.privacy is None or plain.privacy.dp is None)
    assert plain.base_model == str(tmp_path / "public-ner") and plain.training.batch_size == 16


def test_without_a_base_model_the_config_keeps_its_own(monkeypatch):
    bench = load_benchmark(monkeypatch, "dp.py", "dp_benchmark")
    config, _ = bench.run_config(_spec())
    assert config.base_model == "sentence-transformers/all-MiniLM-L6-v2"
