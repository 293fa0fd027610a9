from __future__ import annotations

from pathlib import Path

import pytest

from medtune.config import RunConfig, parse_overrides
from medtune.errors import ConfigError

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_shipped_config_is_valid_and_names_a_corpus():
    from medtune import datasets

    names = {spec.name for spec in datasets.list_datasets()}
    assert len(CONFIGS) >= 11
    for path in CONFIGS:
        cfg = RunConfig.from_yaml(path)
        assert cfg.data.name in names, path


def test_every_named_corpus_has_a_config():
    from medtune import datasets

    shipped = {p.stem for p in CONFIGS}
    for spec in datasets.list_datasets():
        assert spec.name in shipped, f"configs/{spec.name}.yaml is missing"


def test_unknown_key_names_the_key_and_valid_keys(tmp_path):
    path = write(tmp_path, "task: ner\ndata: {name: ncbi-disease}\ntraining:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as err:
        RunConfig.from_yaml(path)
    message = str(err.value)
    assert "training.epoch" in message and "Did you mean 'epochs'" in message
    assert "learning_rate" in message  # the valid keys are listed
    assert str(path) in message


def test_unknown_top_level_key(tmp_path):
    path = write(tmp_path, "task: ner\ndata: {name: x}\nmodle: {}\n")
    with pytest.raises(ConfigError, match="unknown key 'modle'.*Did you mean 'model'"):
        RunConfig.from_yaml(path)


def test_dotted_overrides_apply_and_are_validated(tmp_path):
    path = write(tmp_path, "task: ner\ndata: {name: ncbi-disease}\n")
    cfg = RunConfig.from_yaml(path, parse_overrides(["--training.epochs", "5", "--model.head=crf"]))
    assert cfg.training.epochs == 5 and cfg.model.head == "crf"
    with pytest.raises(ConfigError, match="model.head"):
        RunConfig.from_yaml(path, parse_overrides(["--model.head", "transformer"]))
    with pytest.raises(ConfigError, match="unknown key 'training.nope'"):
        RunConfig.from_yaml(path, parse_overrides(["--training.nope", "1"]))


def test_missing_config_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        RunConfig.from_yaml(tmp_path / "absent.yaml")
    path = write(tmp_path, "task: ner\ndata: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        RunConfig.from_yaml(path)


def test_stride_must_fit_the_window(tmp_path):
    path = write(tmp_path, "task: ner\ndata: {name: x}\nmodel: {max_length: 32, stride: 30}\n")
    with pytest.raises(ConfigError, match="stride"):
        RunConfig.from_yaml(path)


def test_resolved_config_round_trips(tmp_path):
    cfg = RunConfig.from_yaml(CONFIGS[0])
    again = RunConfig.from_yaml(write(tmp_path, cfg.to_yaml()))
    assert again == cfg
