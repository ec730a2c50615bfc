"""Reading YAML strictly and validating it against a JSON schema, with readable messages.

Every problem is reported as ``(field path, what is wrong)``, the field path written like
``items[3].response_set``; :class:`InstrumentFileError` puts the file name in front.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import yaml

from .schema import LANGUAGE_PATTERN

Problem = tuple[str, str]  # (field path, what is wrong)


class InstrumentFileError(Exception):
    """A data file or override file is invalid. ``problems`` lists (field, message) pairs."""

    def __init__(self, path: Path | str, problems: Sequence[Problem]) -> None:
        self.path = Path(path)
        self.problems: tuple[Problem, ...] = tuple(problems) or (("", "invalid file"),)
        self.field, self.problem = self.problems[0]
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(
            f"{self.path}: {field}: {message}" if field else f"{self.path}: {message}"
            for field, message in self.problems
        )


# --------------------------------------------------------------------------------------------
# YAML reading


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when built


class _StrictLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def read_yaml(path: Path) -> Any:
    return _parse_yaml(path, _read_bytes(path))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InstrumentFileError(
            path, [("", f"cannot read the file: {exc.strerror or exc}")]
        ) from exc


def _parse_yaml(path: Path, raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InstrumentFileError(path, [("", f"not UTF-8 text (byte {exc.start})")]) from exc
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise InstrumentFileError(path, [("", f"invalid YAML: {where}{exc.problem}")]) from exc
    except yaml.YAMLError as exc:
        raise InstrumentFileError(path, [("", f"invalid YAML: {exc}")]) from exc


# --------------------------------------------------------------------------------------------
# Schema validation with readable messages

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def field_path(parts: Iterable[str | int]) -> str:
    """``["items", 3, "response_set"]`` -> ``"items[3].response_set"``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(part) or part.isdigit():
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _stringify_keys(value: Any, path: tuple[str | int, ...], problems: list[Problem]) -> Any:
    """A copy with every mapping key turned into ``str``; a key that then repeats is a problem."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            text = str(key)
            if text in out:
                problems.append((field_path(path), f"key {text!r} appears twice"))
            out[text] = _stringify_keys(item, (*path, text), problems)
        return out
    if isinstance(value, list):
        return [_stringify_keys(item, (*path, i), problems) for i, item in enumerate(value)]
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_JSON_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
}


def kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "empty"
    return type(value).__name__


class SchemaPasses:
    """Which files passed which schema check, kept in ``folder`` (the instance folder's
    ``cache/schema-passes``) as one empty file per pass, named by a SHA-256 of the schema, the
    installed jsonschema and the file's exact bytes. The same bytes checked against the same
    schema by the same validator pass again, so a command that starts often (``pro-service
    score``) does not import jsonschema and check unchanged files each time: a changed file, a
    changed schema or another jsonschema is checked afresh, and a file with problems is never
    remembered, so its problems are reported every time. The folder is best effort: when it
    cannot be written, every file is checked."""

    VERSION = b"schema-pass/1"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def key(self, schema: Mapping[str, Any], content: bytes) -> str:
        digest = hashlib.sha256(self.VERSION)
        for part in (
            _validator_identity(),
            json.dumps(schema, sort_keys=True).encode(),
            content,
        ):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        return digest.hexdigest()

    def passed(self, key: str) -> bool:
        return (self.folder / key).is_file()

    def remember(self, key: str) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / key).touch()
        except OSError:
            pass  # not remembered: the file is checked again next time


def _validator_identity() -> bytes:
    """The installed jsonschema (where it is and when it was written), found without importing
    it: a reinstall or an upgrade changes it."""
    spec = importlib.util.find_spec("jsonschema")
    if spec is None or spec.origin is None:  # pragma: no cover - it is a dependency
        return b"?"
    stat = os.stat(spec.origin)
    return f"{spec.origin}|{stat.st_mtime_ns}|{stat.st_size}".encode()


def _schema_problems(document: Any, schema: Mapping[str, Any]) -> list[Problem]:
    import jsonschema  # here: a file that passed before is not checked again (SchemaPasses)

    validator = jsonschema.Draft202012Validator(schema)
    problems: list[Problem] = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path))):
        where = list(error.absolute_path)
        instance = error.instance
        if error.validator == "additionalProperties" and isinstance(instance, dict):
            known = set(error.schema.get("properties", {}))
            patterns = list(error.schema.get("patternProperties", {}))
            for key in instance:
                if key in known or any(re.search(p, key) for p in patterns):
                    continue
                if LANGUAGE_PATTERN in patterns:
                    message = f"{key!r} is not a language code (expected two letters, like 'sv')"
                else:
                    message = "unknown field"
                    if known:
                        message += f" (allowed: {', '.join(sorted(known))})"
                problems.append((field_path([*where, key]), message))
            continue
        if error.validator == "required":
            missing = str(error.message).split("'")[1] if "'" in error.message else error.message
            problems.append((field_path([*where, missing]), "is required but missing"))
            continue
        if error.validator == "type":
            expected = error.validator_value
            names = [expected] if isinstance(expected, str) else list(expected)
            wanted = " or ".join(_JSON_TYPE_NAMES.get(n, n) for n in names)
            message = f"must be {wanted}, not {kind(instance)} ({_short(instance)})"
        elif error.validator == "enum":
            choices = ", ".join(repr(c) for c in error.validator_value)
            message = f"{_short(instance)} is not one of {choices}"
        elif error.validator == "pattern":
            message = f"{_short(instance)} does not match the pattern {error.validator_value}"
        elif error.validator in {"minItems", "minProperties"}:
            message = f"needs at least {error.validator_value} entries"
        elif error.validator == "minLength":
            message = "must not be empty"
        elif error.validator == "uniqueItems":
            message = f"has repeated entries: {_short(instance)}"
        elif error.validator == "minimum":
            message = f"must be at least {error.validator_value}, not {_short(instance)}"
        else:
            message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
        problems.append((field_path(where), message))
    return problems


def validated_document(
    path: Path, schema: Mapping[str, Any], passes: SchemaPasses | None = None
) -> dict[str, Any]:
    """The YAML document of ``path``, checked against ``schema``; InstrumentFileError lists
    every problem. With ``passes``, a file whose exact bytes passed this schema before is not
    checked again (see :class:`SchemaPasses`)."""
    content = _read_bytes(path)
    raw = _parse_yaml(path, content)
    key_problems: list[Problem] = []
    doc = _stringify_keys(raw, (), key_problems)
    if not isinstance(doc, dict):
        raise InstrumentFileError(path, [("", f"must be a YAML mapping, not {kind(doc)}")])
    if key_problems:
        raise InstrumentFileError(path, key_problems + _schema_problems(doc, schema))
    key = passes.key(schema, content) if passes is not None else ""
    if not (passes is not None and passes.passed(key)):
        problems = _schema_problems(doc, schema)
        if problems:
            raise InstrumentFileError(path, problems)
        if passes is not None:
            passes.remember(key)
    # The schema saw string keys; hand back the original (keys as YAML typed them) where it
    # matters to the caller, i.e. the override maps keyed by numbers. Values are unchanged.
    return cast(dict[str, Any], raw)
