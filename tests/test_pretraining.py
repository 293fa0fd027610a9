"""Domain-adaptive masked-LM pretraining writes a model directory that fine-tuning accepts as base."""

from __future__ import annotations

from typer.testing import CliRunner

from medtune.cli import app
from medtune.config import RunConfig
from medtune.io.jsonl import write_jsonl
from medtune.training.pretraining import blocks, pretrain_mlm
from medtune.training import train

from helpers import ner_docs


def test_blocks_have_the_requested_length(tiny_tokenizer):
    texts = [d.text for d in ner_docs(6, repeat=3)]
    out = blocks(tiny_tokenizer, texts, 16)
    assert out and all(len(b["input_ids"]) <= 16 for b in out)
    assert all(len(b["input_ids"]) == 16 for b in out[:-1])
    assert all(b["input_ids"][0] == tiny_tokenizer.cls_token_id for b in out)


def test_pretrained_encoder_is_a_valid_base_model(tiny_model_dir, tmp_path):
    summary = pretrain_mlm(str(tiny_model_dir), [d.text for d in ner_docs(8, repeat=2)], tmp_path / "dapt",
                           max_steps=3, batch_size=4, max_length=16, bf16="false", progress_bar=False)
    assert summary["blocks"] > 0 and (tmp_path / "dapt" / "model.safetensors").exists()
    write_jsonl(ner_docs(4), tmp_path / "train.jsonl")
    cfg = RunConfig.from_dict({
        "task": "ner", "base_model": str(tmp_path / "dapt"),
        "data": {"train": str(tmp_path / "train.jsonl"), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8},
        "training": {"max_steps": 2, "batch_size": 2, "progress_bar": False, "bf16": "false"},
    })
    assert (train(cfg, tmp_path / "ner").output_dir / "model.safetensors").exists()


def test_cli_refuses_the_test_split(tmp_path):
    result = CliRunner().invoke(app, ["pretrain", "--data", "ncbi-disease", "--split", "test",
                                      "--output", str(tmp_path / "x")])
    assert result.exit_code == 2 and "leaks" in result.output


def test_masked_only_loss_equals_the_full_head_loss(tiny_model_dir, tiny_tokenizer):
    import torch
    from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling

    from medtune.training.pretraining import masked_lm_loss

    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_pretrained(tiny_model_dir).eval()
    data = blocks(tiny_tokenizer, [d.text for d in ner_docs(6, repeat=2)], 16)
    batch = DataCollatorForLanguageModeling(tiny_tokenizer, mlm_probability=0.3)(data[:4])
    with torch.no_grad():
        full = model(**batch).loss
        fast = masked_lm_loss(model, batch)
    assert torch.isclose(full, fast, atol=1e-5)
