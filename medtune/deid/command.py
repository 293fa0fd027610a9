"""``medtune deid``: the typer command (registered by ``medtune.cli``) over a pipeline with a ``deid``
component (:mod:`medtune.pipeline.components.deid`).

Kept light to import: the library is imported when the command runs. :func:`run_deid` is the plain
function behind it (tests and notebooks call it).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, List, Optional

import typer

DEID_HELP = """Replace PHI (names, dates, ages over 89, phone numbers, ids, places, ...) in notes.

INPUT is literal text, a .txt file (one note), a folder of .txt files, or a JSONL file of medtune
documents. An argument is a path when it exists, ends in .txt/.jsonl/.ndjson or contains '/' but
no space; --text TEXT is always text. The same documents come out in the same format: with --output
ending in .jsonl every document goes into that one JSONL file; otherwise --output is a folder that
gets one .txt per text or .txt note and one .jsonl per JSONL input, under the input's name. JSONL
output keeps metadata.deid: what was replaced (types, new offsets) and the offset map back to the
original. Every output is written atomically, all of them only when every input was read.

Detection: the rules, and the PHI model when --pipeline (e.g. pipelines/deid.yaml) or --model names
one; without either, the rules alone (lower recall). What HIPAA's Safe Harbor does not count as PHI
(a state, a country, an age of 89 or less) and numbers that measure ("6/10 pain", "3/4 str") stay
in the text even where the model marks them; --keep-not-phi replaces them too. Surrogates are consistent per patient
(metadata.patient, else the document id) under --date-shift-key KEYFILE (a secret file); without it a
random key is drawn for the run. --audit writes one JSON line per replacement (document, type, source,
offsets; no PHI) unless --audit-include-text, which puts the original PHI into the audit.
"""

_TEXT_SUFFIXES = (".txt",)
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
logger = logging.getLogger("medtune.deid")


@dataclass
class DeidResult:
    """Counts of a run (no PHI): documents, replacements by type and by source, files written."""

    documents: int = 0
    replaced: dict[str, int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)
    outputs: list[Path] = field(default_factory=list)
    rules_only: bool = False


@dataclass
class _Input:
    kind: str  # "text" (literal), "txt" (a file), "folder", "jsonl"
    value: Any
    output: str  # the output's name inside an output folder


def _looks_like_path(item: str) -> bool:
    try:
        if Path(item).exists():
            return True
    except (OSError, ValueError):  # too long for a path, a NUL byte: text
        return False
    if Path(item).suffix.lower() in _TEXT_SUFFIXES + _JSONL_SUFFIXES:
        return True
    return ("/" in item or os.sep in item) and (not any(c.isspace() for c in item) or item.endswith(("/", os.sep)))


def plan_inputs(items: List[str], texts: List[str]) -> list[_Input]:
    """Classify every argument before any work; a path must exist and be text, JSONL or a folder."""
    from medtune.errors import CommandLineError, DataFormatError

    plan: list[_Input] = []
    n = 0
    for item in items:
        if not _looks_like_path(item):
            n += 1
            plan.append(_Input("text", item, f"text-{n}.txt"))
            continue
        path = Path(item)
        if not path.exists():
            raise DataFormatError("input file or folder not found", path=path,
                                  fix="check the path (relative to the current directory); text that looks "
                                      "like a path goes in --text")
        suffix = path.suffix.lower()
        if path.is_dir():
            plan.append(_Input("folder", path, ""))
        elif suffix in _JSONL_SUFFIXES:
            plan.append(_Input("jsonl", path, path.name))
        elif suffix in _TEXT_SUFFIXES:
            plan.append(_Input("txt", path, path.name))
        else:
            raise DataFormatError(f"medtune deid reads .txt and JSONL files, not '{suffix or 'no suffix'}' files",
                                  path=path, fix="convert the notes to .txt files or to JSONL (`medtune predict "
                                                 "--help` lists the readers that can load them)")
    for text in texts:
        n += 1
        plan.append(_Input("text", text, f"text-{n}.txt"))
    if not plan:
        raise CommandLineError("nothing to de-identify: give texts, .txt or JSONL files, or folders",
                               fix="e.g. `medtune deid notes/ --output deid/` or `--text 'Seen by Dr. Smith.'`")
    return plan


def _folder_notes(path: Path) -> list[Path]:
    from medtune.errors import DataFormatError

    notes = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".txt"
                   and not p.name.startswith("."))
    if not notes:
        raise DataFormatError("the folder has no .txt files", path=path,
                              fix="put one note per .txt file in it, or give a JSONL file")
    return notes


def _documents(item: _Input) -> Iterator[Any]:
    from medtune.document import Document
    from medtune.errors import DataFormatError
    from medtune.fileutils import read_text
    from medtune.io.jsonl import read_jsonl

    if item.kind == "text":
        yield Document(id=item.output[:-4], text=item.value)
    elif item.kind == "txt":
        yield Document(id=item.value.stem, text=read_text(item.value))
    elif item.kind == "jsonl":
        count = 0
        for doc in read_jsonl(item.value):
            count += 1
            yield doc
        if count == 0:
            raise DataFormatError("no documents in the file", path=item.value, fix="give a JSONL file of documents")
    else:  # a folder: one document per .txt
        for note in _folder_notes(item.value):
            yield Document(id=note.stem, text=read_text(note))


def _outputs(plan: list[_Input], output: Path) -> list[list[Path]]:
    """The output file(s) of each input; refuses two inputs writing one file and outputs over inputs."""
    from medtune.errors import ConfigError

    if output.suffix.lower() in _JSONL_SUFFIXES:
        targets = [[output] for _ in plan]
    else:
        targets = [[output / note.name for note in _folder_notes(item.value)] if item.kind == "folder"
                   else [output / item.output] for item in plan]
        seen: dict[Path, int] = {}
        for k, paths in enumerate(targets):
            for path in paths:
                if path in seen and seen[path] != k:
                    raise ConfigError(f"two inputs would both be written to {path}",
                                      fix="give inputs with different file names, or --output OUT.jsonl")
                seen[path] = k
    inputs = {p.resolve() for item in plan if item.kind in ("txt", "jsonl") for p in [item.value]}
    inputs |= {p.resolve() for item in plan if item.kind == "folder" for p in _folder_notes(item.value)}
    for paths in targets:
        for path in paths:
            if path.resolve() in inputs:
                raise ConfigError(f"--output would overwrite the input {path}",
                                  fix="write the de-identified notes to another file or folder")
    return targets


def build_pipeline(pipeline: Optional[Path], *, rules: Optional[bool], model: Optional[Path],
                   outside_weight: Optional[float], replace: Optional[str], key_file: Optional[Path],
                   times: Optional[bool] = None, not_phi: Optional[bool] = None) -> Any:
    """The pipeline to run: ``pipeline`` (its ``deid`` component with the options given here replacing
    its settings), or one ``deid`` component from the options alone."""
    from pydantic import ValidationError

    from medtune.errors import ConfigError
    from medtune.pipeline import Pipeline
    from medtune.pipeline.components.deid import DeidComponent, DeidConfig
    from medtune.pipeline.pipeline import PipelineConfig

    update: dict[str, Any] = {}
    if rules is not None:
        update["rules"] = rules
    if model is not None:
        update["model"] = str(model.resolve())
    if outside_weight is not None:
        update["outside_weight"] = outside_weight
    if replace is not None:
        update["replace"] = replace
    if key_file is not None:
        update["key_file"] = str(key_file.resolve())
    if times is not None:
        update["times"] = times
    if not_phi is not None:
        update["not_phi"] = not_phi
    if pipeline is None:
        try:
            config = DeidConfig.model_validate({"kind": "deid", **update})
        except ValidationError as err:
            raise ConfigError("invalid deid options: " + "; ".join(e["msg"] for e in err.errors()),
                              fix="see `medtune deid --help`") from None
        return Pipeline(PipelineConfig(name="deid", components=[config]), Path.cwd(), "medtune deid")
    pipe = Pipeline.from_yaml(pipeline)
    found = [k for k, comp in enumerate(pipe.components) if comp.kind == "deid"]
    if not found:
        raise ConfigError(f"{pipeline}: the pipeline has no deid component",
                          fix="add `- kind: deid` as its first component (see pipelines/deid.yaml)")
    if update:
        k = found[0]
        comp = pipe.components[k]
        try:
            config = DeidConfig.model_validate({**comp.config.model_dump(), **update})
        except ValidationError as err:
            raise ConfigError(f"{pipeline}: invalid deid options: " + "; ".join(e["msg"] for e in err.errors()),
                              fix="see `medtune deid --help`") from None
        pipe.components[k] = DeidComponent(config, comp.base)
    return pipe


def _audit_records(original: Any, doc: Any, include_text: bool) -> Iterator[dict[str, Any]]:
    record = doc.metadata.get("deid") or {}
    for fld, replaced, offsets, text in (("text", record.get("replaced", []), record.get("offsets", []), original.text),
                                        ("text_pair", record.get("pair_replaced", []), record.get("pair_offsets", []),
                                         original.text_pair or "")):
        for rep, (new_start, new_end, start, end) in zip(replaced, offsets):
            out = {"document": doc.id, "field": fld, "type": rep["type"], "label": rep["label"],
                   "source": rep["source"], "original": [start, end], "deid": [new_start, new_end]}
            if include_text:
                out["text"] = text[start:end]
            yield out


def run_deid(items: List[str], output: Path, *, texts: Optional[List[str]] = None, pipeline: Optional[Path] = None,
             rules: Optional[bool] = None, model: Optional[Path] = None, outside_weight: Optional[float] = None,
             replace: Optional[str] = None, key_file: Optional[Path] = None, audit: Optional[Path] = None,
             audit_include_text: bool = False, batch_size: int = 16, times: Optional[bool] = None,
             not_phi: Optional[bool] = None) -> DeidResult:
    """De-identify the inputs into ``output`` (see ``medtune deid --help``); returns counts only."""
    import contextlib
    import json

    from medtune.batching import buffered
    from medtune.errors import ConfigError
    from medtune.fileutils import atomic_path
    from medtune.io.jsonl import JsonlWriter

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be 1 or more, not {batch_size}", fix="e.g. --batch-size 16")
    if output.exists() and output.suffix.lower() not in _JSONL_SUFFIXES and not output.is_dir():
        raise ConfigError(f"--output {output} is a file; a folder is written there",
                          fix="give a folder, or a path ending in .jsonl for one JSONL file")
    if output.is_dir() and output.suffix.lower() in _JSONL_SUFFIXES:
        raise ConfigError(f"--output {output} is a folder; a JSONL file is written there", fix="give a file path")
    if audit is not None and audit.is_dir():
        raise ConfigError(f"--audit {audit} is a folder; a JSONL file is written there", fix="e.g. --audit audit.jsonl")
    plan = plan_inputs(items, list(texts or []))
    targets = _outputs(plan, output)
    pipe = build_pipeline(pipeline, rules=rules, model=model, outside_weight=outside_weight, replace=replace,
                          key_file=key_file, times=times, not_phi=not_phi)
    comp = next(c for c in pipe.components if c.kind == "deid")
    result = DeidResult(rules_only=comp.config.model is None)
    single = output.suffix.lower() in _JSONL_SUFFIXES
    with contextlib.ExitStack() as stack:  # every output commits together, only when all inputs were read
        audit_handle = None
        if audit is not None:
            audit_handle = stack.enter_context(open(stack.enter_context(atomic_path(audit)), "w", encoding="utf-8"))
        writer = None
        if single:
            writer = stack.enter_context(JsonlWriter(stack.enter_context(atomic_path(output))))
        for item, paths in zip(plan, targets):
            jsonl_out = None
            if not single and item.kind == "jsonl":
                jsonl_out = stack.enter_context(JsonlWriter(stack.enter_context(atomic_path(paths[0]))))
            txt_paths = iter(paths)
            for chunk in buffered(_documents(item), batch_size):
                for original, doc in zip(chunk, pipe.pipe(chunk, batch_size=batch_size)):
                    result.documents += 1
                    for rec in _audit_records(original, doc, audit_include_text):
                        result.replaced[rec["type"]] = result.replaced.get(rec["type"], 0) + 1
                        result.sources[rec["source"]] = result.sources.get(rec["source"], 0) + 1
                        if audit_handle is not None:
                            audit_handle.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    if single:
                        writer.write(doc)  # type: ignore[union-attr]
                    elif jsonl_out is not None:
                        jsonl_out.write(doc)
                    else:
                        tmp = stack.enter_context(atomic_path(next(txt_paths)))
                        tmp.write_text(doc.text, encoding="utf-8")
        result.outputs = sorted({p for paths in targets for p in paths})
    return result


def deid_command(
    inputs: Optional[List[str]] = typer.Argument(None, help="texts, .txt files, folders of .txt, JSONL files"),
    output: Path = typer.Option(..., "--output", "-o", help="output folder, or OUT.jsonl for one JSONL file"),
    text: Optional[List[str]] = typer.Option(None, "--text", help="literal text to de-identify (repeatable)"),
    pipeline: Optional[Path] = typer.Option(None, "--pipeline", help="pipeline YAML with a deid component, e.g. "
                                                                      "pipelines/deid.yaml (rules + the PHI model)"),
    model: Optional[Path] = typer.Option(None, "--model", help="PHI NER model directory (instead of the "
                                                                "pipeline's)"),
    rules: Optional[bool] = typer.Option(None, "--rules/--no-rules", help="run the PHI patterns (default: on, or "
                                                                           "as the pipeline says)"),
    outside_weight: Optional[float] = typer.Option(None, "--outside-weight", help="the model's decoding bias in "
                                                   "(0, 1]; below 1 favours PHI (default: stored in the model)"),
    replace: Optional[str] = typer.Option(None, "--replace", help="surrogate (default), tag ([NAME], [DATE], ...) "
                                                                   "or mask (*** of the same length)"),
    date_shift_key: Optional[Path] = typer.Option(None, "--date-shift-key", help="secret key file (16+ bytes): the "
                                                  "same surrogates and date shift for a patient in every run"),
    audit: Optional[Path] = typer.Option(None, "--audit", help="write one JSON line per replacement here "
                                                               "(document, type, source, offsets; no PHI)"),
    audit_include_text: bool = typer.Option(False, "--audit-include-text", help="ALSO PUT THE ORIGINAL PHI TEXT "
                                            "INTO THE AUDIT (the audit file then holds PHI: protect it)"),
    batch_size: int = typer.Option(16, "--batch-size", help="documents per batch"),
    times: Optional[bool] = typer.Option(None, "--times/--no-times", help="also replace clock times next to a "
                                         "date (default: off, or as the pipeline says)"),
    not_phi: Optional[bool] = typer.Option(None, "--not-phi/--keep-not-phi", help="drop the model's spans that "
                                           "HIPAA Safe Harbor does not count as PHI (states, countries, ages of 89 "
                                           "or less) and numbers that measure (default: dropped); --keep-not-phi "
                                           "replaces them too"),
) -> None:
    from medtune.deid.replace import check_mode

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if replace is not None:
        check_mode(replace)
    result = run_deid(list(inputs or []), output, texts=list(text or []), pipeline=pipeline, rules=rules,
                      model=model, outside_weight=outside_weight, replace=replace, key_file=date_shift_key,
                      audit=audit, audit_include_text=audit_include_text, batch_size=batch_size, times=times,
                      not_phi=not_phi)
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(result.replaced.items())) or "none"
    typer.echo(f"{result.documents} documents de-identified, {sum(result.replaced.values())} PHI spans replaced "
               f"({kinds}); written to {output}")
    if result.rules_only:
        typer.echo("note: rules only (no PHI model): names and places without a cue are missed; see "
                   "docs/deid.md", err=True)
    if date_shift_key is None:
        typer.echo("note: no --date-shift-key: surrogates and date shifts were drawn with a random key for this "
                   "run only", err=True)


# one line per paragraph: the help formatter wraps lines itself
deid_command.__doc__ = "\n\n".join(" ".join(part.split()) for part in DEID_HELP.split("\n\n"))
