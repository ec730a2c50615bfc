"""Licensed official text: ``<text_dir>/<id>/<version>/<lang>.yaml`` (docs/instrument-format.md).

An override replaces only text (items, response labels, recall periods, screen headings) for one
language; numbers, codes, screens and scales always come from the data file. Unknown items,
codes, response sets, recall periods, screens or languages are errors.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .model import Instrument, Item, ResponseCode, ResponseSet, Screen, Text
from .schema import TEXT_OVERRIDE_SCHEMA
from .validation import InstrumentFileError, Problem, SchemaPasses, validated_document


def _number_key(key: Any) -> int | None:
    if isinstance(key, int) and not isinstance(key, bool):
        return int(key)
    if isinstance(key, str) and re.fullmatch(r"-?[0-9]+", key):
        return int(key)
    return None


def _with_lang(text: Text, lang: str, value: str) -> Text:
    updated = dict(text)
    updated[lang] = value
    return MappingProxyType(updated)


def apply_text_overrides(
    instrument: Instrument, text_dir: Path, passes: SchemaPasses | None = None
) -> Instrument:
    """Apply every ``<text_dir>/<id>/<version>/<lang>.yaml`` to ``instrument`` (``passes``: see
    :func:`~pro_service.instruments.validation.validated_document`)."""
    if not text_dir.is_dir():
        raise InstrumentFileError(text_dir, [("", "the licensed-text folder does not exist")])
    folder = text_dir / instrument.id / instrument.version
    if not folder.is_dir():
        return instrument
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix == ".yml":
            raise InstrumentFileError(path, [("", "name the file <lang>.yaml, not .yml")])
        if path.suffix != ".yaml":
            continue
        instrument = _apply_override(instrument, path, passes)
    return instrument


def _apply_override(instrument: Instrument, path: Path, passes: SchemaPasses | None) -> Instrument:
    lang = path.stem
    if lang not in instrument.languages:
        raise InstrumentFileError(
            path,
            [
                (
                    "",
                    f"{lang!r} is not a language of {instrument.key} "
                    f"({', '.join(instrument.languages)})",
                )
            ],
        )
    doc = validated_document(path, TEXT_OVERRIDE_SCHEMA, passes)
    problems: list[Problem] = []
    add = problems.append

    items = dict(instrument.items)
    for key, text in doc.get("items", {}).items():
        number = _number_key(key)
        if number is None or number not in items:
            add((f"items.{key}", f"{instrument.key} has no item {key!r}"))
            continue
        items[number] = replace(items[number], text=_with_lang(items[number].text, lang, text))

    response_sets = dict(instrument.response_sets)
    for set_name, labels in doc.get("response_labels", {}).items():
        if set_name not in response_sets:
            add(
                (
                    f"response_labels.{set_name}",
                    f"{instrument.key} has no response set {set_name!r}",
                )
            )
            continue
        rs = response_sets[set_name]
        by_code = {o.code: o for o in rs.codes}
        for key, label in labels.items():
            code = _number_key(key)
            if code is None or code not in by_code:
                add(
                    (
                        f"response_labels.{set_name}.{key}",
                        f"response set {set_name!r} has no code {key!r}",
                    )
                )
                continue
            by_code[code] = ResponseCode(code, _with_lang(by_code[code].label, lang, label))
        response_sets[set_name] = ResponseSet(set_name, tuple(by_code[o.code] for o in rs.codes))

    recall_periods = dict(instrument.recall_periods)
    for name, text in doc.get("recall_periods", {}).items():
        if name not in recall_periods:
            add((f"recall_periods.{name}", f"{instrument.key} has no recall period {name!r}"))
            continue
        recall_periods[name] = _with_lang(recall_periods[name], lang, text)

    screens = list(instrument.screens)
    for key, heading in doc.get("screen_headings", {}).items():
        index = _number_key(key)
        if index is None or not 0 <= index < len(screens):
            add(
                (
                    f"screen_headings.{key}",
                    f"{instrument.key} has no screen {key!r} "
                    f"(screens are numbered 0-{len(screens) - 1})",
                )
            )
            continue
        screen = screens[index]
        if screen.heading is None:
            add(
                (
                    f"screen_headings.{key}",
                    f"screen {index} has no heading in the data file; "
                    "an override can only replace text",
                )
            )
            continue
        screens[index] = Screen(
            screen.index, screen.items, _with_lang(screen.heading, lang, heading)
        )

    if problems:
        raise InstrumentFileError(path, problems)

    # Rebuild items so that every item sees the new labels and recall text.
    rebuilt: dict[int, Item] = {}
    for number, item in items.items():
        rs = response_sets[item.response_set]
        rebuilt[number] = replace(
            item,
            labels=MappingProxyType({o.code: o.label for o in rs.codes}),
            recall_text=recall_periods[item.recall],
        )
    licensed = dict(instrument.licensed_text)
    licensed[lang] = str(doc["source"])
    return replace(
        instrument,
        items=MappingProxyType(rebuilt),
        response_sets=MappingProxyType(response_sets),
        recall_periods=MappingProxyType(recall_periods),
        screens=tuple(screens),
        licensed_text=MappingProxyType(licensed),
    )
