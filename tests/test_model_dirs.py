"""Broken model and base-model directories end in a coded ModelError naming the directory or file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtune.cli import app
from medtune.errors import ModelError
from medtune.io.jsonl import write_jsonl

from helpers import ner_docs

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _config(d: Path) -> dict:
    return json.loads((d / "config.json").read_text(encoding="utf-8"))


def _set_config(d: Path, **changes) -> None:
    config = _config(d)
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (d / "config.json").write_text(json.dumps(config), encoding="utf-8")


def _weights(d: Path) -> Path:
    return d / "model.safetensors"


def truncate(d):
    _weights(d).write_bytes(_weights(d).read_bytes()[: _weights(d).stat().st_size // 2])


def truncate_header(d):
    _weights(d).write_bytes(_weights(d).read_bytes()[:6])


def pad(d):
    _weights(d).write_bytes(_weights(d).read_bytes() + b"\0" * 4096)


def garbage_config(d):
    (d / "config.json").write_text('{"model_type": "bert", ', encoding="utf-8")


def config_not_object(d):
    (d / "config.json").write_text("[1, 2]", encoding="utf-8")


def config_is_dir(d):
    (d / "config.json").unlink()
    (d / "config.json").mkdir()


def no_model_type(d):
    _set_config(d, model_type=None)


def custom_model_type(d):
    _set_config(d, model_type="zz-custom-arch", auto_map={"AutoModel": "modeling_zz.ZZModel"})


def incomplete_config(d):  # transformers fills in BERT-base defaults: 768 hidden, which the weights do not have
    _set_config(d, hidden_size=None, num_attention_heads=None, intermediate_size=None)


def other_size(d):
    _set_config(d, hidden_size=64, intermediate_size=128)


def other_labels(d):
    from safetensors.torch import load_file, save_file

    state = load_file(str(_weights(d)))
    state["classifier.weight"] = state["classifier.weight"][:2].clone()
    state["classifier.bias"] = state["classifier.bias"][:2].clone()
    save_file(state, str(_weights(d)))


def other_task_head(d):  # a CRF head's tensors in a linear-head model
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(str(_weights(d)))
    n = state["classifier.bias"].shape[0]
    state["crf.transitions"] = torch.zeros(n, n)
    save_file(state, str(_weights(d)))


def pickle_only(d):
    _weights(d).unlink()
    (d / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")


def no_tokenizer(d):
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (d / name).exists():
            (d / name).unlink()


def tiny_vocabulary(d):
    no_tokenizer(d)
    (d / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n", encoding="utf-8")


def meta_incomplete(d):
    config = _config(d)
    config["medtune"].pop("labels")
    (d / "config.json").write_text(json.dumps(config), encoding="utf-8")


def meta_unknown_task(d):
    config = _config(d)
    config["medtune"]["task"] = "zz-task"
    (d / "config.json").write_text(json.dumps(config), encoding="utf-8")


BROKEN = {
    # name: (mutation, what the message names, a word of the message)
    "truncated weights": (truncate, "model.safetensors", "truncated"),
    "truncated header": (truncate_header, "model.safetensors", "truncated"),
    "oversized weights": (pad, "model.safetensors", "padded"),
    "garbage config.json": (garbage_config, "config.json:1", "not valid JSON"),
    "config.json not an object": (config_not_object, "config.json", "JSON object"),
    "config.json is a directory": (config_is_dir, "config.json", "not a file"),
    "no model_type": (no_model_type, "config.json", "model_type"),
    "custom model_type": (custom_model_type, "config.json", "trust_remote_code"),
    "incomplete config": (incomplete_config, "model.safetensors", "another shape"),
    "weights of another size": (other_size, "model.safetensors", "another shape"),
    "weights of another label set": (other_labels, "model.safetensors", "another shape"),
    "weights of another head": (other_task_head, "model.safetensors", "unexpected"),
    "pickle weights only": (pickle_only, "", "never unpickles"),
    "no tokenizer files": (no_tokenizer, "", "no tokenizer files"),
    "tokenizer without vocabulary": (tiny_vocabulary, "", "[UNK]"),
    "medtune section incomplete": (meta_incomplete, "config.json", "'labels'"),
    "medtune section unknown task": (meta_unknown_task, "config.json", "no known task"),
}


@pytest.fixture()
def model_copy(tiny_ner_model, tmp_path):
    d = tmp_path / "model"
    shutil.copytree(tiny_ner_model, d)
    return d


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_model_directory_is_a_coded_model_error(model_copy, case):
    mutate, names, word = BROKEN[case]
    mutate(model_copy)
    result = run("predict", model_copy, "No history of diabetes.")
    assert result.exit_code == 2, result.output
    assert "error: [E400]" in result.output and "Fix:" in result.output
    assert str(model_copy / names) in result.output
    assert word in result.output
    assert "Traceback" not in result.output and "internal error" not in result.output


def test_intact_copy_predicts(model_copy):
    result = run("predict", model_copy, "No history of diabetes.")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["text"] == "No history of diabetes."


def test_the_library_raises_model_error_too(model_copy):
    import medtune

    no_tokenizer(model_copy)
    with pytest.raises(ModelError, match="no tokenizer files"):
        medtune.load(model_copy)


# ----------------------------------------------------------------------------- base models
BASE_BROKEN = {
    "truncated weights": (truncate, "truncated"),
    "oversized weights": (pad, "padded"),
    "garbage config.json": (garbage_config, "not valid JSON"),
    "config.json is a directory": (config_is_dir, "not a file"),
    "custom model_type": (custom_model_type, "trust_remote_code"),
    "weights of another size": (other_size, "not fit"),
    "pickle weights only": (pickle_only, "never unpickles"),
    "no tokenizer files": (no_tokenizer, "no tokenizer files"),
    "tokenizer without vocabulary": (tiny_vocabulary, "[UNK]"),
}


def _load_base(path: Path) -> None:
    from medtune.models.encoder import build_encoder
    from medtune.models.encoder import resolve_base_model

    build_encoder(resolve_base_model(str(path)))


@pytest.mark.parametrize("case", sorted(BASE_BROKEN))
@pytest.mark.parametrize("kind", ["hf", "medtune"])
def test_broken_base_model_is_a_coded_model_error(tiny_model_dir, tiny_ner_model, tmp_path, case, kind):
    mutate, word = BASE_BROKEN[case]
    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir if kind == "hf" else tiny_ner_model, base)
    _load_base(base)  # intact: loads
    mutate(base)
    with pytest.raises(ModelError) as err:
        _load_base(base)
    assert str(base) in str(err.value) and word in str(err.value) and "Fix:" in str(err.value)


def test_base_weights_with_other_names_are_refused(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    state = load_file(str(_weights(base)))
    save_file({f"other.{k}": v for k, v in state.items()}, str(_weights(base)))
    with pytest.raises(ModelError, match="do not fit.*random weights"):
        _load_base(base)


def test_train_refuses_base_model_without_tokenizer(tiny_model_dir, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    no_tokenizer(base)
    write_jsonl(ner_docs(2), tmp_path / "train.jsonl")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"task: ner\nbase_model: {base}\n"
                   f"data: {{train: {tmp_path / 'train.jsonl'}, format: jsonl}}\n"
                   "training: {max_steps: 1, progress_bar: false, bf16: 'false'}\n", encoding="utf-8")
    result = run("train", cfg, "--output", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "[E400]" in result.output and str(base) in result.output and "no tokenizer files" in result.output
    assert not (tmp_path / "out" / "model.safetensors").exists()
