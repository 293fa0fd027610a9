"""The allocator setting of medtune.runtime: applied on glibc, refused when the user turns it off."""

from __future__ import annotations

import platform

import pytest

from medtune import runtime
from medtune.config import RunConfig


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(runtime, "_tuned", False)
    return monkeypatch


def test_tune_allocator_applies_on_glibc_and_is_idempotent(fresh):
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert runtime.tune_allocator() is glibc
    assert runtime.allocator_tuned() is glibc
    assert runtime.tune_allocator() is glibc  # a second call keeps the state


@pytest.mark.parametrize("value", ["0", "false", "OFF", "no"])
def test_environment_variable_turns_it_off(fresh, value):
    fresh.setenv("MEDTUNE_MALLOC_TUNING", value)
    assert runtime.allocator_tuning_allowed() is False
    assert runtime.tune_allocator() is False
    assert runtime.allocator_tuned() is False


def test_training_config_switch():
    cfg = RunConfig.from_dict({"task": "ner", "data": {"train": "x.conll"}, "training": {"malloc_tuning": False}})
    assert cfg.training.malloc_tuning is False
    assert RunConfig.from_dict({"task": "ner", "data": {"train": "x.conll"}}).training.malloc_tuning is True


def test_numbers_do_not_change_with_the_allocator(fresh):
    """Same seed, same tiny model: identical logits before and after the thresholds are raised."""
    import torch
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    model = BertForTokenClassification(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                                  num_attention_heads=2, intermediate_size=64, num_labels=3)).eval()
    x = torch.randint(0, 100, (4, 300))
    with torch.no_grad():
        before = model(input_ids=x).logits
        runtime.tune_allocator()
        after = model(input_ids=x).logits
    assert torch.equal(before, after)
