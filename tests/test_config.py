from __future__ import annotations

import re
from pathlib import Path

import pytest

from medtune.config import RunConfig, parse_overrides
from medtune.errors import ConfigError

ALL_YAML = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
LINKERS = [p for p in ALL_YAML if p.stem.startswith("linker-")]
#: masked-LM pretraining recipes (medtune.pretraining.config.PretrainConfig), not run configs
PRETRAINING = [p for p in ALL_YAML if p.stem.startswith("pretrain-")]
CONFIGS = [p for p in ALL_YAML if p not in LINKERS and p not in PRETRAINING]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_shipped_config_is_valid_and_names_a_corpus():
    from medtune import datasets

    names = {spec.name for spec in datasets.list_datasets()}
    assert len(CONFIGS) >= 11
    #: configs that train on files a command writes (named in the config's own comment)
    built = {"medquad-reranker.yaml": "runs/medquad-reranker-data/"}
    for path in CONFIGS:
        cfg = RunConfig.from_yaml(path)
        if path.name in built:
            assert cfg.data.name is None and cfg.data.train.startswith(built[path.name]), path
            continue
        assert cfg.data.name in names, path


def test_every_shipped_pretraining_recipe_is_valid():
    from medtune.pretraining.config import PretrainConfig

    assert PRETRAINING
    for path in PRETRAINING:
        assert PretrainConfig.from_yaml(path).corpus.corpora, path


def test_every_named_corpus_has_a_config():
    """Every trainable corpus has a run config; every linking view has a linker that learns from it."""
    from medtune import datasets
    from medtune.linking.config import LinkerConfig

    trained = {RunConfig.from_yaml(p).data.name for p in CONFIGS}
    linked = {name for p in LINKERS for name in LinkerConfig.from_yaml(p).train}
    for spec in datasets.list_datasets():
        if spec.task == "linking":
            assert spec.name.removesuffix("-linking") in linked, spec.name
        elif spec.task == "retrieval":  # passages for a knowledge base (`medtune kb build`), not a training set
            continue
        elif "train" in spec.splits:
            assert spec.name in trained, f"no config in configs/ trains on {spec.name}"


def test_shipped_pipelines_are_valid_and_point_into_models():
    from medtune.pipeline import Pipeline

    root = Path(__file__).parent.parent
    pipelines = sorted((root / "pipelines").glob("*.yaml"))
    assert {p.stem for p in pipelines} == {"pharmacovigilance", "literature", "clinical-note", "deid"}
    made = re.search(r"^MODELS := ((?:.*\\\n)*.*)$", (root / "Makefile").read_text(), re.M).group(1).split()
    for path in pipelines:
        pipe = Pipeline.from_yaml(path)
        for comp in pipe.components:
            for model in comp.model_paths:  # every member of an ensemble too
                assert model.parent == (root / "models").resolve(), (path, comp.name)
                assert f"models/{model.name}" in made, f"`make models` does not build {model.name} ({path})"


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


def test_empty_train_fraction_keeps_every_annotated_doc_and_a_stable_share_of_the_rest(tmp_path):
    from medtune.config import DataConfig
    from medtune.data import load_split
    from medtune.document import Document
    from medtune.io.jsonl import write_jsonl

    docs = [Document(id=f"e{i}", text="nothing here") for i in range(400)]
    docs += [Document(id=f"a{i}", text="fever", labels=["x"]) for i in range(20)]
    write_jsonl(docs, tmp_path / "train.jsonl")
    cfg = DataConfig(train=str(tmp_path / "train.jsonl"), format="jsonl", empty_train_fraction=0.25)
    first = [d.id for d in load_split(cfg, "train")]
    assert first == [d.id for d in load_split(cfg, "train")]  # the same documents every run
    assert sum(i.startswith("a") for i in first) == 20
    assert 60 <= sum(i.startswith("e") for i in first) <= 140  # about a quarter of 400
    none = DataConfig(train=str(tmp_path / "train.jsonl"), format="jsonl", empty_train_fraction=0.0)
    assert sorted(d.id for d in load_split(none, "train")) == sorted(f"a{i}" for i in range(20))
    with pytest.raises(ConfigError):
        RunConfig.from_dict({"task": "ner", "data": {"name": "ade", "empty_train_fraction": -0.1}})


def test_empty_dev_fraction_filters_dev_only(tmp_path):
    from medtune.config import DataConfig
    from medtune.data import load_split
    from medtune.document import Document
    from medtune.io.jsonl import write_jsonl

    docs = [Document(id=f"e{i}", text="nothing here") for i in range(10)]
    docs += [Document(id=f"a{i}", text="fever", labels=["x"]) for i in range(5)]
    for split in ("train", "dev", "test"):
        write_jsonl(docs, tmp_path / f"{split}.jsonl")
    cfg = DataConfig(train=str(tmp_path / "train.jsonl"), dev=str(tmp_path / "dev.jsonl"),
                     test=str(tmp_path / "test.jsonl"), format="jsonl", empty_dev_fraction=0.0)
    assert len(load_split(cfg, "train")) == 15
    assert sorted(d.id for d in load_split(cfg, "dev")) == sorted(f"a{i}" for i in range(5))
    assert len(load_split(cfg, "test")) == 15, "the test split is never filtered"
    with pytest.raises(ConfigError):
        RunConfig.from_dict({"task": "ner", "data": {"name": "ade", "empty_dev_fraction": 1.5}})
