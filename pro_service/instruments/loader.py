"""Load and validate instrument files (docs/instrument-format.md).

A bad file raises :class:`InstrumentFileError`, whose message names the file, the field (as
``items[3].response_set``) and what is wrong, one problem per line. Validation runs the JSON
schema first, then the checks between fields (:func:`cross_check`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from .model import (
    Instrument,
    Item,
    ResponseCode,
    ResponseSet,
    Scale,
    ScaleType,
    Screen,
    SummaryScore,
    Text,
    Transform,
)
from .overrides import apply_text_overrides
from .registry import InstrumentRegistry
from .schema import INSTRUMENT_SCHEMA
from .validation import InstrumentFileError, Problem, SchemaPasses, validated_document

#: Folders of the questionnaire directory that hold other data (the study schedules).
RESERVED_FOLDERS = frozenset({"schedules"})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_text(
    value: Mapping[str, Any], where: str, languages: Sequence[str], problems: list[Problem]
) -> None:
    for lang in languages:
        if lang not in value:
            problems.append(
                (where, f"missing the {lang!r} text (languages: {', '.join(languages)})")
            )
    for lang in value:
        if lang not in languages:
            problems.append(
                (
                    f"{where}.{lang}",
                    f"{lang!r} is not one of the languages ({', '.join(languages)})",
                )
            )


def cross_check(doc: dict[str, Any], path: Path) -> list[Problem]:
    """Checks between fields; ``doc`` has passed the schema."""
    problems: list[Problem] = []
    add = problems.append

    if doc["id"] != path.parent.name:
        add(("id", f"{doc['id']!r} does not match the folder name {path.parent.name!r}"))
    if doc["version"] != path.stem:
        add(("version", f"{doc['version']!r} does not match the file name {path.name!r}"))

    languages: list[str] = doc["languages"]
    _check_text(doc["name"], "name", languages, problems)
    _check_text(doc["paraphrase_notice"], "paraphrase_notice", languages, problems)

    set_codes: dict[str, list[int]] = {}
    for set_name, response_set in doc["response_sets"].items():
        codes: list[int] = []
        for i, option in enumerate(response_set["codes"]):
            where = f"response_sets.{set_name}.codes[{i}]"
            code = option["code"]
            if not _is_int(code):
                add(
                    (
                        f"{where}.code",
                        f"must be a whole number written without decimals, not {code!r}",
                    )
                )
                continue
            if code in codes:
                add((f"{where}.code", f"code {code} appears twice in {set_name!r}"))
            elif codes and code < codes[-1]:
                add(
                    (
                        f"{where}.code",
                        f"codes must be in ascending order ({code} after {codes[-1]})",
                    )
                )
            codes.append(code)
            _check_text(option["label"], f"{where}.label", languages, problems)
        set_codes[set_name] = sorted(set(codes))

    for recall_name, recall_text in doc["recall_periods"].items():
        _check_text(recall_text, f"recall_periods.{recall_name}", languages, problems)

    first_item: int = doc["first_item"]
    numbers: list[int] = []
    for i, item in enumerate(doc["items"]):
        where = f"items[{i}]"
        number = item["number"]
        expected = first_item + i
        if number in numbers:
            add((f"{where}.number", f"item number {number} appears twice"))
        elif number != expected:
            add(
                (
                    f"{where}.number",
                    f"is {number}, expected {expected} (items are numbered "
                    f"consecutively from first_item {first_item})",
                )
            )
        numbers.append(number)
        if item["response_set"] not in doc["response_sets"]:
            add(
                (
                    f"{where}.response_set",
                    f"item {number}: response set {item['response_set']!r} "
                    f"is not defined in response_sets ({', '.join(doc['response_sets'])})",
                )
            )
        if item["recall"] not in doc["recall_periods"]:
            add(
                (
                    f"{where}.recall",
                    f"item {number}: recall period {item['recall']!r} is not "
                    f"defined in recall_periods ({', '.join(doc['recall_periods'])})",
                )
            )
        _check_text(item["text"], f"{where}.text", languages, problems)
    known_items = set(numbers)
    item_set = {item["number"]: item["response_set"] for item in doc["items"]}

    seen_on: dict[int, int] = {}
    for s, screen in enumerate(doc["screens"]):
        where = f"screens[{s}]"
        for j, number in enumerate(screen["items"]):
            if number not in known_items:
                add((f"{where}.items[{j}]", f"item {number} does not exist"))
            elif number in seen_on:
                other = seen_on[number]
                add(
                    (
                        f"{where}.items[{j}]",
                        f"item {number} is already on "
                        f"{'this screen' if other == s else f'screens[{other}]'}",
                    )
                )
            else:
                seen_on[number] = s
        if "heading" in screen:
            _check_text(screen["heading"], f"{where}.heading", languages, problems)
    for number in numbers:
        if number not in seen_on:
            add(("screens", f"item {number} is on no screen"))

    score_codes: set[str] = set()
    scale_codes: set[str] = set()
    for k, scale in enumerate(doc["scales"]):
        where = f"scales[{k}]"
        code = scale["code"]
        if code in score_codes:
            add((f"{where}.code", f"score code {code!r} appears twice"))
        score_codes.add(code)
        scale_codes.add(code)
        _check_text(scale["name"], f"{where}.name", languages, problems)
        ranges: set[tuple[int, int]] = set()
        for j, number in enumerate(scale["items"]):
            if number not in known_items:
                add((f"{where}.items[{j}]", f"scale {code}: item {number} does not exist"))
                continue
            if scale["items"].index(number) != j:
                add((f"{where}.items[{j}]", f"scale {code}: item {number} is listed twice"))
            codes = set_codes.get(item_set[number], [])
            if len(codes) >= 2:
                ranges.add((codes[0], codes[-1]))
        if len(ranges) > 1:
            add(
                (
                    f"{where}.items",
                    f"scale {code}: its items have different code ranges "
                    f"({', '.join(f'{lo}-{hi}' for lo, hi in sorted(ranges))}), so the scale "
                    "has no single range to transform with",
                )
            )

    for k, summary in enumerate(doc.get("summary_scores", [])):
        where = f"summary_scores[{k}]"
        code = summary["code"]
        if code in score_codes:
            add((f"{where}.code", f"score code {code!r} appears twice"))
        score_codes.add(code)
        _check_text(summary["name"], f"{where}.name", languages, problems)
        components: list[str] = summary["components"]
        for j, component in enumerate(components):
            if component not in scale_codes:
                add((f"{where}.components[{j}]", f"{component!r} is not a scale of this file"))
            elif components.index(component) != j:
                add((f"{where}.components[{j}]", f"{component!r} is listed twice"))
        for j, component in enumerate(summary.get("reversed", [])):
            if component not in components:
                add((f"{where}.reversed[{j}]", f"{component!r} is not one of the components"))
    return problems


def _frozen_text(value: Mapping[str, str]) -> Text:
    return MappingProxyType(dict(value))


def _build(doc: dict[str, Any], path: Path) -> Instrument:
    languages = tuple(doc["languages"])
    response_sets = {
        name: ResponseSet(
            name=name,
            codes=tuple(
                ResponseCode(code=o["code"], label=_frozen_text(o["label"])) for o in rs["codes"]
            ),
        )
        for name, rs in doc["response_sets"].items()
    }
    recall_periods = {name: _frozen_text(text) for name, text in doc["recall_periods"].items()}
    items: dict[int, Item] = {}
    for raw in doc["items"]:
        rs = response_sets[raw["response_set"]]
        items[raw["number"]] = Item(
            number=raw["number"],
            response_set=rs.name,
            codes=tuple(o.code for o in rs.codes),
            labels=MappingProxyType({o.code: o.label for o in rs.codes}),
            recall=raw["recall"],
            recall_text=recall_periods[raw["recall"]],
            text=_frozen_text(raw["text"]),
        )
    screens = tuple(
        Screen(
            index=i,
            items=tuple(raw["items"]),
            heading=_frozen_text(raw["heading"]) if "heading" in raw else None,
        )
        for i, raw in enumerate(doc["screens"])
    )
    scales = tuple(
        Scale(
            code=raw["code"],
            name=_frozen_text(raw["name"]),
            type=cast(ScaleType, raw["type"]),
            transform=cast(
                Transform,
                raw.get("transform", "functional" if raw["type"] == "functional" else "symptom"),
            ),
            items=tuple(raw["items"]),
            direction_verified=raw["direction_verified"],
        )
        for raw in doc["scales"]
    )
    summaries = tuple(
        SummaryScore(
            code=raw["code"],
            name=_frozen_text(raw["name"]),
            components=tuple(raw["components"]),
            reversed=tuple(raw.get("reversed", [])),
        )
        for raw in doc.get("summary_scores", [])
    )
    return Instrument(
        id=doc["id"],
        version=doc["version"],
        name=_frozen_text(doc["name"]),
        languages=languages,
        text_source=doc["text_source"],
        paraphrase_notice=_frozen_text(doc["paraphrase_notice"]),
        first_item=doc["first_item"],
        response_sets=MappingProxyType(response_sets),
        recall_periods=MappingProxyType(recall_periods),
        items=MappingProxyType(items),
        screens=screens,
        scales=scales,
        summary_scores=summaries,
        source_path=path,
        licensed_text=MappingProxyType({}),
    )


def load_instrument(
    path: Path | str, text_dir: Path | str | None = None, passes: SchemaPasses | None = None
) -> Instrument:
    """Load and validate ``<...>/<id>/<version>.yaml``; apply licensed text from ``text_dir``.

    ``passes``: files that passed their schema check before (see :class:`SchemaPasses`).
    """
    path = Path(path)
    doc = validated_document(path, INSTRUMENT_SCHEMA, passes)
    problems = cross_check(doc, path)
    if problems:
        raise InstrumentFileError(path, problems)
    instrument = _build(doc, path)
    if text_dir is not None:
        instrument = apply_text_overrides(instrument, Path(text_dir), passes)
    return instrument


def load_instruments(
    data_dir: Path | str,
    text_dir: Path | str | None = None,
    *,
    passes: SchemaPasses | None = None,
) -> InstrumentRegistry:
    """Load every ``<data_dir>/<id>/<version>.yaml`` (folder ``schedules/`` is not instruments).

    With ``text_dir``, apply ``<text_dir>/<id>/<version>/<lang>.yaml`` overrides; a folder
    there for an instrument or version that was not loaded is an error. With ``passes``, a file
    whose exact bytes passed its schema check before is not checked against the schema again
    (every other check is made); see :class:`~.validation.SchemaPasses`.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InstrumentFileError(data_dir, [("", "the questionnaire folder does not exist")])
    text_path = Path(text_dir) if text_dir is not None else None
    if text_path is not None and not text_path.is_dir():
        raise InstrumentFileError(text_path, [("", "the licensed-text folder does not exist")])

    instruments: list[Instrument] = []
    for folder in sorted(data_dir.iterdir()):
        if not folder.is_dir() or folder.name.startswith((".", "_")):
            continue
        if folder.name in RESERVED_FOLDERS:
            continue
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            if path.suffix == ".yml":
                raise InstrumentFileError(path, [("", "name the file <version>.yaml, not .yml")])
            if path.suffix == ".yaml":
                instruments.append(load_instrument(path, text_path, passes))
    if not instruments:
        raise InstrumentFileError(
            data_dir, [("", "no instrument files found (expected <id>/<version>.yaml)")]
        )
    registry = InstrumentRegistry(instruments)

    if text_path is not None:
        for folder in sorted(text_path.iterdir()):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            if folder.name not in registry.ids():
                raise InstrumentFileError(
                    folder, [("", f"no instrument {folder.name!r} in {data_dir}")]
                )
            for version_dir in sorted(folder.iterdir()):
                if version_dir.name.startswith(".") or not version_dir.is_dir():
                    continue
                if version_dir.name not in registry.versions(folder.name):
                    message = f"no version {version_dir.name!r} of {folder.name} in {data_dir}"
                    raise InstrumentFileError(version_dir, [("", message)])
    return registry
