"""A component kind added from outside the package is one class and one config, registered; it then
works in a pipeline YAML like the built-in kinds."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from medtune.document import Document
from medtune.errors import ConfigError
from medtune.pipeline import Pipeline
from medtune.pipeline.components import Component, ComponentConfig, handoff, register_component
from medtune.pipeline.components.base import COMPONENTS


class KeywordConfig(ComponentConfig):
    kind: Literal["keyword"]
    word: str
    label: str = "Keyword"


@register_component
class KeywordComponent(Component):
    """Marks every occurrence of a word, sentence by sentence (reads the sentences hand-off)."""

    kind = "keyword"
    config_class = KeywordConfig

    def build(self):
        return self.config.word.lower()

    def process(self, docs, *, batch_size=32):
        word = self.load()
        for doc in docs:
            for a, b in handoff.sentences(doc):
                start = doc.text.lower().find(word, a, b)
                if start >= 0:
                    doc.add_span(start, start + len(word), self.config.label)
        return docs


def test_a_registered_component_runs_in_a_pipeline_yaml(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: toy\ncomponents:\n  - kind: sentences\n  - kind: keyword\n    word: fever\n"
                    "  - kind: assertion\n", encoding="utf-8")
    pipe = Pipeline.from_yaml(path)
    doc = pipe("No fever today. Fever again, and more fever.")
    assert [(s.start, s.label) for s in doc.spans] == [(3, "Keyword"), (16, "Keyword")]
    assert doc.spans[0].attributes["negated"] is True and doc.spans[1].attributes["negated"] is False
    assert doc.metadata["sentences"] == [[0, 15], [16, 44]]
    assert isinstance(pipe.components[1], KeywordComponent)


def test_its_config_is_strict_and_explained(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: toy\ncomponents:\n  - kind: keyword\n    wrod: fever\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown key 'components.0.wrod'; valid keys: kind, name, labels, word"):
        Pipeline.from_yaml(path)
    path.write_text("name: toy\ncomponents:\n  - kind: keywords\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown kind 'keywords'; registered kinds: .*keyword"):
        Pipeline.from_yaml(path)


def test_a_kind_cannot_be_registered_twice():
    class Other(Component):
        kind = "ner"

    with pytest.raises(ConfigError, match="already registered"):
        register_component(Other)
    assert COMPONENTS["ner"].__name__ == "NerComponent"


def test_components_return_the_documents_they_enrich():
    comp = KeywordComponent(KeywordConfig(kind="keyword", word="cough"), base=Path("."))
    docs = [Document(id="a", text="A cough.")]
    out = comp.process(docs)
    assert out is docs and out[0].spans[0].text == "cough"


def test_assertion_lexicons_are_found_relative_to_the_pipeline_file(tmp_path, monkeypatch):
    """Like model paths, a lexicon path in a pipeline file is relative to that file, not to the cwd."""
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "extra.yaml").write_text("version: 1\nrules:\n  - category: NEGATED_EXISTENCE\n"
                                       "    direction: forward\n    phrase: [zeroed]\n", encoding="utf-8")
    (folder / "p.yaml").write_text("name: toy\ncomponents:\n  - kind: keyword\n    word: fever\n"
                                   "  - kind: assertion\n    lexicon: [extra.yaml]\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # not the pipeline's folder
    doc = Pipeline.from_yaml("pipelines/p.yaml")("Zeroed fever.")
    assert doc.spans[0].attributes["negated"] is True
