"""Checks and parsing shared by the commands: batch sizes, outputs, reader options, predict inputs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, List, Optional

from medtune.config import parse_value
from medtune.data import read_data_section
from medtune.errors import CommandLineError, ConfigError


# ----------------------------------------------------------------------------- option checks
def check_batch_size(value: int, option: str = "--batch-size") -> None:
    if value < 1:
        raise ConfigError(f"{option} must be 1 or more, not {value}", fix=f"give {option} 32 (or any count >= 1)")


def check_count(value: int, option: str) -> None:
    if value < 0:
        raise ConfigError(f"{option} must be 0 or more, not {value}", fix=f"give {option} 0 (none) or a positive count")


def check_probability(value: Optional[float], option: str) -> None:
    if value is not None and not 0 < value < 1:
        raise ConfigError(f"{option} must lie between 0 and 1 (exclusive), not {value}", fix=f"e.g. {option} 0.9")


def check_parents(path: Path, option: str) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {path}: {parent} is a file, not a directory",
                                  fix=f"give a path for {option} inside a directory")
            return


def check_output_file(path: Optional[Path], option: str = "--output", example: str = "out.jsonl") -> None:
    """``path`` can become a file: not an existing directory, no file where a parent directory goes."""
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a directory, and a file is written there",
                          fix=f"give a file path, e.g. {path / example}")
    check_parents(path, option)


def check_output_dir(path: Optional[Path], option: str = "--output") -> None:
    """``path`` can become a directory: not an existing file, no file where a parent directory goes."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file, and a directory is written there",
                          fix=f"give a directory path for {option} (it is created when missing)")
    check_parents(path, option)


# ----------------------------------------------------------------------------- reader options
_OPTION_TOKEN = re.compile(r"--?[A-Za-z][A-Za-z0-9_.-]*")
_READER_KEY = re.compile(r"[a-z][a-z0-9_]*")
_RAW_STRING_OPTIONS = ("delimiter", "label_separator")
_READER_HELP = ("reader options of the file's format, like a training config's data.options: "
                "--reader.text_column X, --reader.label_column Y, --reader.tag_column N, --reader.delimiter ';'")


def reader_value(key: str, value: str) -> Any:
    """A ``--reader.KEY`` value: separators stay strings (``\\t`` and ``tab`` mean a tab), a column is an
    index when it is an integer and a header name otherwise, anything else is parsed as YAML."""

    if key in _RAW_STRING_OPTIONS:
        return {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(value, value)
    if key.endswith("_column"):
        return int(value) if re.fullmatch(r"-?[0-9]{1,9}", value) else value
    return parse_value(value)


def split_reader_options(tokens: List[str], command: str) -> tuple[List[str], dict[str, Any]]:
    """Take ``--reader.KEY VALUE`` / ``--reader.KEY=VALUE`` out of ``tokens``; refuse any other option.

    Returns the other tokens in order and the options.
    """
    rest: List[str] = []
    options: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--reader."):
            key, has_value, value = token[len("--reader."):].partition("=")
            if not has_value:
                if i + 1 >= len(tokens):
                    raise CommandLineError(f"option --reader.{key} has no value",
                                           fix="write --reader.KEY VALUE, e.g. --reader.text_column text")
                value = tokens[i + 1]
                i += 1
            if not _READER_KEY.fullmatch(key):
                raise CommandLineError("a --reader. option needs a reader option name after the dot",
                                       fix="write --reader.KEY VALUE, e.g. --reader.text_column text")
            options[key] = reader_value(key, value)
        elif _OPTION_TOKEN.fullmatch(token.split("=", 1)[0]):
            raise CommandLineError(f"no such option: {token.split('=', 1)[0]}",
                                   fix=f"see `medtune {command} --help`; literal text that starts with '-' "
                                       "goes in --text")
        else:
            rest.append(token)
        i += 1
    return rest, options


def reader_settings(data_config: Optional[Path], format: Optional[str],
                     reader_options: dict[str, Any]) -> tuple[dict[str, Any], Optional[str], dict[str, Any]]:
    """(data section, format, options): the command line wins over ``--data-config``'s ``data:`` section."""
    section: dict[str, Any] = {}
    if data_config is not None:

        section = read_data_section(data_config)
    fmt = format if format is not None else section.get("format")
    options = {**(section.get("options") or {}), **reader_options}
    return section, fmt, options


# ----------------------------------------------------------------------------- commands
