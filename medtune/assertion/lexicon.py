"""The ConText lexicon: categories, rules and their YAML files (see ``medtune.assertion.rules`` for the
format and the algorithm). Every problem in a lexicon file is a ConfigError naming the file and the rule."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import regex
import yaml

from medtune.errors import ConfigError

#: Modifier categories, the boolean span attribute each one sets and its family.
CATEGORY_ATTRIBUTE: dict[str, str] = {
    "NEGATED_EXISTENCE": "negated",
    "POSSIBLE_EXISTENCE": "uncertain",
    "HISTORICAL": "historical",
    "HYPOTHETICAL": "hypothetical",
    "FAMILY": "family",
    "CONDITIONAL": "conditional",
}
CATEGORY_FAMILY: dict[str, str] = {
    "NEGATED_EXISTENCE": "existence",
    "POSSIBLE_EXISTENCE": "existence",
    "HISTORICAL": "temporality",
    "HYPOTHETICAL": "temporality",
    "FAMILY": "experiencer",
    "CONDITIONAL": "conditional",
}
#: With ``same_family_terminates``, the scope of a trigger of category K ends at the next trigger
#: (in its direction) of one of these categories: its own family, except that an uncertainty cue
#: does not end a negation ("no findings to suggest pneumonia" stays negated) while a negation cue
#: does end an uncertainty ("possible pneumonia, no effusion").
SCOPE_ENDERS: dict[str, frozenset[str]] = {
    "NEGATED_EXISTENCE": frozenset({"NEGATED_EXISTENCE"}),
    "POSSIBLE_EXISTENCE": frozenset({"NEGATED_EXISTENCE", "POSSIBLE_EXISTENCE"}),
    "HISTORICAL": frozenset({"HISTORICAL", "HYPOTHETICAL"}),
    "HYPOTHETICAL": frozenset({"HISTORICAL", "HYPOTHETICAL"}),
    "FAMILY": frozenset({"FAMILY"}),
    "CONDITIONAL": frozenset({"CONDITIONAL"}),
}
CATEGORIES: tuple[str, ...] = (*CATEGORY_ATTRIBUTE, "PSEUDO", "TERMINATE")
DIRECTIONS: tuple[str, ...] = ("forward", "backward", "bidirectional", "terminate", "pseudo")
#: The attributes the engine always sets on a span (False unless a trigger fires).
ATTRIBUTES: tuple[str, ...] = tuple(CATEGORY_ATTRIBUTE.values())


RULE_KEYS = ("phrase", "category", "direction", "max_scope", "regex", "terminates", "comment")
TOP_KEYS = ("defaults", "rules", "version", "comment")
DEFAULT_KEYS = ("max_scope", "same_family_terminates")

SHIPPED_LEXICON = "en.yaml"
#: Seconds one regex rule may take on one sentence before the analysis stops with a ConfigError.
REGEX_TIMEOUT_S = 0.2
_REGEX_FLAGS = regex.IGNORECASE | regex.VERSION0


# --------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class ContextRule:
    """One lexicon entry.

    ``terminates`` (for terminators) lists the modifier categories whose scopes the rule ends;
    ``origin`` says where the rule comes from (``file#index``), for error messages.
    """

    phrase: str
    category: str
    direction: str
    max_scope: int | None = None
    regex: bool = False
    terminates: frozenset[str] = frozenset()
    origin: str = ""

    @property
    def key(self) -> str:
        """The normalised phrase: lower-case tokens (the identity used to override rules)."""
        return self.phrase if self.regex else " ".join(phrase_tokens(self.phrase))

    @property
    def is_modifier(self) -> bool:
        return self.direction in ("forward", "backward", "bidirectional")


def _rule_error(path: str, index: int | None, message: str, fix: str) -> ConfigError:
    where = f"{path}, rule {index}" if index is not None else path
    return ConfigError(f"assertion lexicon {where}: {message}", fix=fix)


def origin_error(rule: ContextRule, message: str, fix: str) -> ConfigError:
    """A ConfigError naming the file and rule index of ``rule.origin`` (``file#index``)."""
    path, sep, index = rule.origin.rpartition("#")
    if not sep or not index.isdigit():
        return ConfigError(f"assertion rule {rule.origin or '(built in code)'} ({rule.category}): {message}",
                           fix=fix)
    return _rule_error(path, int(index), message, fix)


def compile_regex(rule: ContextRule) -> Any:
    try:
        return regex.compile(rule.phrase, _REGEX_FLAGS)
    except regex.error as err:
        raise origin_error(rule, f"'phrase' is not a valid regular expression ({err.msg})",
                            "fix the pattern, or set `regex: false` to match it literally") from None


def parse_rules(data: Any, origin: str) -> tuple[list[ContextRule], dict[str, Any]]:
    """Check and convert the content of one YAML lexicon; return its rules and its ``defaults``.

    Raises ``ConfigError`` naming ``origin`` (the file), the rule index (0-based, in the order of
    the ``rules`` list) and the fix.
    """
    if data is None:
        data = {}
    if isinstance(data, list):  # a bare list of rules is accepted
        data = {"rules": data}
    if not isinstance(data, dict):
        raise _rule_error(origin, None, "the file must hold a mapping with a 'rules' list",
                          "write `rules:` followed by a list of `- {phrase: ..., category: ...}` entries")
    unknown = sorted(set(map(str, data)) - set(TOP_KEYS))
    if unknown:
        raise _rule_error(origin, None, f"unknown top-level key(s) {unknown}",
                          f"use only {list(TOP_KEYS)}")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise _rule_error(origin, None, "'defaults' must be a mapping", f"use keys {list(DEFAULT_KEYS)}")
    bad = sorted(set(map(str, defaults)) - set(DEFAULT_KEYS))
    if bad:
        raise _rule_error(origin, None, f"unknown key(s) {bad} in 'defaults'",
                          f"use only {list(DEFAULT_KEYS)}")
    if "max_scope" in defaults:
        _check_scope(defaults["max_scope"], origin, None, "defaults.max_scope")
    if "same_family_terminates" in defaults and not isinstance(defaults["same_family_terminates"], bool):
        raise _rule_error(origin, None, "'defaults.same_family_terminates' must be true or false",
                          "write true or false")
    entries = data.get("rules") or []
    if not isinstance(entries, list):
        raise _rule_error(origin, None, "'rules' must be a list",
                          "write `rules:` followed by `- ...` entries")
    rules: list[ContextRule] = []
    for index, entry in enumerate(entries):
        rules.extend(_parse_rule(entry, origin, index))
    return rules, dict(defaults)


def _check_scope(value: Any, origin: str, index: int | None, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _rule_error(origin, index, f"'{key}' must be a positive whole number of word tokens or null",
                          f"write e.g. `{key.split('.')[-1]}: 5`, or leave it out for the whole sentence")
    return value


def _parse_rule(entry: Any, origin: str, index: int) -> list[ContextRule]:
    if not isinstance(entry, dict):
        raise _rule_error(origin, index, "a rule must be a mapping",
                          "write `- {phrase: ..., category: ..., direction: ...}`")
    unknown = sorted(set(map(str, entry)) - set(RULE_KEYS))
    if unknown:
        raise _rule_error(origin, index, f"unknown key(s) {unknown}", f"use only {list(RULE_KEYS)}")
    phrases = entry.get("phrase")
    if isinstance(phrases, bool) or isinstance(phrases, list) and any(isinstance(p, bool) for p in phrases):
        raise _rule_error(origin, index, "'phrase' was read as true/false, not as text",
                          "quote the phrase: YAML reads unquoted no, yes, on, off as booleans "
                          "(write phrase: \"no\")")
    if isinstance(phrases, str):
        phrases = [phrases]
    if (not isinstance(phrases, list) or not phrases
            or not all(isinstance(p, str) and p.strip() for p in phrases)):
        raise _rule_error(origin, index, "missing or empty 'phrase'",
                          "give `phrase:` a non-empty string (or a list of strings)")
    category = entry.get("category")
    if not isinstance(category, str) or category.upper() not in CATEGORIES:
        raise _rule_error(origin, index, "missing or unknown 'category'", f"use one of {list(CATEGORIES)}")
    category = category.upper()
    direction = entry.get("direction")
    implied = {"PSEUDO": "pseudo", "TERMINATE": "terminate"}.get(category)
    if direction is None:
        direction = implied or "forward"
    if not isinstance(direction, str) or direction.lower() not in DIRECTIONS:
        raise _rule_error(origin, index, "unknown 'direction'", f"use one of {list(DIRECTIONS)}")
    direction = direction.lower()
    if implied and direction != implied:
        raise _rule_error(origin, index, f"category {category} goes with direction '{implied}'",
                          f"write `direction: {implied}` or leave the direction out")
    max_scope = _check_scope(entry.get("max_scope"), origin, index, "max_scope")
    is_regex = entry.get("regex", False)
    if not isinstance(is_regex, bool):
        raise _rule_error(origin, index, "'regex' must be true or false",
                          "write `regex: true` or leave it out")
    terminates_raw = entry.get("terminates")
    if terminates_raw is not None:
        if direction != "terminate":
            raise _rule_error(origin, index, "'terminates' is only meaningful for terminators",
                              "remove 'terminates' or use `category: TERMINATE`")
        if isinstance(terminates_raw, str):
            terminates_raw = [terminates_raw]
        if (not isinstance(terminates_raw, list)
                or not all(isinstance(c, str) and c.upper() in CATEGORY_ATTRIBUTE for c in terminates_raw)):
            raise _rule_error(origin, index, "'terminates' must list modifier categories",
                              f"use categories from {list(CATEGORY_ATTRIBUTE)}")
        terminates = frozenset(c.upper() for c in terminates_raw)
    elif direction == "terminate":
        if category == "TERMINATE":
            terminates = frozenset(CATEGORY_ATTRIBUTE)
        else:
            family = CATEGORY_FAMILY[category]
            terminates = frozenset(c for c, f in CATEGORY_FAMILY.items() if f == family)
    else:
        terminates = frozenset()
    rules = []
    for phrase in phrases:
        rule = ContextRule(phrase=phrase.strip(), category=category, direction=direction,
                           max_scope=max_scope, regex=is_regex, terminates=terminates,
                           origin=f"{origin}#{index}")
        if is_regex:
            compile_regex(rule)
        rules.append(rule)
    return rules


def load_lexicon(path: str | Path) -> tuple[list[ContextRule], dict[str, Any]]:
    """Read one YAML lexicon file; see :func:`parse_rules`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"assertion lexicon {path} not found",
                          fix="check the path (relative paths are resolved from the current directory)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"assertion lexicon {path} is not UTF-8",
                          fix="re-encode the file as UTF-8") from None
    except OSError as err:
        raise ConfigError(f"assertion lexicon {path} cannot be read ({err.strerror or type(err).__name__})",
                          fix="check the file's permissions") from None
    return parse_lexicon_text(text, str(path))


def parse_lexicon_text(text: str, origin: str) -> tuple[list[ContextRule], dict[str, Any]]:
    """Parse the YAML ``text`` of a lexicon; ``origin`` names it in errors."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"assertion lexicon {origin} is not valid YAML{where}",
                          fix="check the indentation and quote phrases that hold ':' or '#'") from None
    return parse_rules(data, origin)


def load_shipped_lexicon() -> tuple[list[ContextRule], dict[str, Any]]:
    """The English lexicon shipped as package data (``medtune/assertion/lexicon/en.yaml``)."""
    resource = resources.files("medtune.assertion").joinpath("lexicon", SHIPPED_LEXICON)
    origin = f"medtune/assertion/lexicon/{SHIPPED_LEXICON}"
    return parse_lexicon_text(resource.read_text(encoding="utf-8"), origin)


def shipped_lexicon_path() -> Path:
    """Where the shipped English lexicon lies (for reading or copying it as a starting point)."""
    return Path(str(resources.files("medtune.assertion").joinpath("lexicon", SHIPPED_LEXICON)))

WORD_TOKEN = re.compile(r"\w+|[^\w\s]")

def phrase_tokens(phrase: str) -> tuple[str, ...]:
    """The tokens a literal phrase matches: words and single punctuation marks, in lower case."""
    return tuple(t.lower().replace("\u2019", "'") for t in WORD_TOKEN.findall(phrase))
