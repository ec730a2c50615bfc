"""Loading and validating instrument files and licensed-text overrides."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pro_service.instruments import (
    INSTRUMENT_SCHEMA,
    TEXT_OVERRIDE_SCHEMA,
    Instrument,
    InstrumentFileError,
    InstrumentRegistry,
    load_instrument,
    load_instruments,
)

from .conftest import C30_FILE, C30_SCALES, PAN26_FILE, PAN26_SCALES, QUESTIONNAIRES

LANGUAGES = ("sv", "fi", "en")


def _real(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _write(folder: Path, document: dict[str, Any] | str, name: str = "qlq-c30/3.0.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = document if isinstance(document, str) else yaml.safe_dump(document, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# The real files


def test_real_files_load_into_a_registry(registry: InstrumentRegistry):
    assert [i.key for i in registry] == ["qlq-c30:3.0", "qlq-pan26:1.0"]
    assert [i.key for i in registry.latest()] == ["qlq-c30:3.0", "qlq-pan26:1.0"]
    assert registry.get("qlq-c30") is registry.get("qlq-c30", "3.0")
    assert registry.by_key("qlq-pan26:1.0") is registry.get("qlq-pan26")
    assert "qlq-c30:3.0" in registry and "qlq-c30:9.9" not in registry
    assert len(registry) == 2 and registry.all() == tuple(registry)


def test_real_files_validate_against_the_published_schema():
    for path in (C30_FILE, PAN26_FILE):
        jsonschema.validate(_real(path), INSTRUMENT_SCHEMA)


def test_unknown_instrument_or_version_is_a_key_error(registry: InstrumentRegistry):
    with pytest.raises(KeyError, match="unknown instrument 'qlq-br23'"):
        registry.get("qlq-br23")
    with pytest.raises(KeyError, match="unknown version '2.0' of qlq-c30"):
        registry.get("qlq-c30", "2.0")


def test_c30_structure_matches_the_manual(c30: Instrument):
    assert (c30.first_item, c30.last_item) == (1, 30)
    assert list(c30.items) == list(range(1, 31))
    assert [s.code for s in c30.scales] == list(C30_SCALES)
    assert c30.languages == LANGUAGES and c30.text_source == "paraphrase"
    for number, item in c30.items.items():
        expected = (1, 7) if number in (29, 30) else (1, 4)
        assert (item.min_code, item.max_code) == expected
        assert item.code_range == expected[1] - expected[0]
    assert [i.recall for i in c30.items.values()][:5] == ["none"] * 5
    assert {i.recall for n, i in c30.items.items() if n > 5} == {"past_week"}
    summary = c30.summary_scores[0]
    assert summary.code == "C30_SUMMARY"
    assert " ".join(summary.components) == "PF2 RF2 EF CF SF FA NV PA DY SL AP CO DI"
    assert set(summary.reversed) == {"FA", "NV", "PA", "DY", "SL", "AP", "CO", "DI"}


def test_c30_scale_membership_matches_the_manual(c30: Instrument):
    expected = {
        "QL2": (29, 30),
        "PF2": (1, 2, 3, 4, 5),
        "RF2": (6, 7),
        "EF": (21, 22, 23, 24),
        "CF": (20, 25),
        "SF": (26, 27),
        "FA": (10, 12, 18),
        "NV": (14, 15),
        "PA": (9, 19),
        "DY": (8,),
        "SL": (11,),
        "AP": (13,),
        "CO": (16,),
        "DI": (17,),
        "FI": (28,),
    }
    assert {s.code: s.items for s in c30.scales} == expected
    types = {s.code: s.type for s in c30.scales}
    assert {c for c, t in types.items() if t == "functional"} == {"PF2", "RF2", "EF", "CF", "SF"}
    assert types["QL2"] == "global"


def test_pan26_structure_matches_the_scoring_sheet(pan26: Instrument):
    assert list(pan26.items) == list(range(31, 57))
    assert [s.code for s in pan26.scales] == list(PAN26_SCALES)
    assert all(i.codes == (1, 2, 3, 4) for i in pan26.items.values())
    memberships = {s.code: s.items for s in pan26.scales}
    assert memberships["PAN_PP"] == (31, 33, 34, 35)
    assert memberships["PAN_SA"] == (53, 54) and memberships["PAN_SX"] == (55, 56)
    assert sorted(n for s in pan26.scales for n in s.items) == list(range(31, 57))


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_item_has_text_labels_and_exactly_one_screen(
    c30: Instrument, pan26: Instrument, lang: str
):
    for instrument in (c30, pan26):
        on_screens = [n for screen in instrument.screens for n in screen.items]
        assert sorted(on_screens) == list(instrument.items)
        for number, item in instrument.items.items():
            assert instrument.item_text(number, lang) == item.text[lang] != ""
            for code in item.codes:
                assert instrument.label(number, code, lang)
            instrument.recall_text(number, lang)


def test_text_helpers_reject_unknown_language_item_and_code(c30: Instrument):
    assert c30.label(29, 7, "en").startswith("7")
    with pytest.raises(KeyError, match="no language 'de'"):
        c30.item_text(1, "de")
    with pytest.raises(KeyError, match="no item 31"):
        c30.item_text(31, "en")
    with pytest.raises(KeyError, match="item 1 has no code 5"):
        c30.label(1, 5, "en")


def test_instrument_objects_are_frozen(c30: Instrument):
    with pytest.raises(AttributeError):
        c30.version = "4.0"
    with pytest.raises(TypeError):
        c30.items[1] = c30.items[2]


# --------------------------------------------------------------------------------------------
# Bad instrument files: the message names the file, the field and the problem.

Edit = Callable[[dict[str, Any]], None]


def _set(path: list[Any], value: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _delete(path: list[Any]) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


BAD_FILES: list[Any] = [
    pytest.param(
        _set(["items", 3, "response_set"], "five_point"),
        "items[3].response_set",
        "response set 'five_point' is not defined",
        id="unknown-response-set",
    ),
    pytest.param(
        _set(["items", 7, "recall"], "past_month"),
        "items[7].recall",
        "recall period 'past_month' is not defined",
        id="unknown-recall",
    ),
    pytest.param(
        _delete(["items", 0, "text", "fi"]),
        "items[0].text",
        "missing the 'fi' text",
        id="missing-language",
    ),
    pytest.param(
        _set(["name", "de"], "Fragebogen"),
        "name.de",
        "'de' is not one of the languages",
        id="extra-language",
    ),
    pytest.param(
        _set(["items", 4, "number"], 7),
        "items[4].number",
        "is 7, expected 5",
        id="non-consecutive-number",
    ),
    pytest.param(
        _set(["items", 4, "number"], 4),
        "items[4].number",
        "item number 4 appears twice",
        id="duplicate-number",
    ),
    pytest.param(
        _set(["id"], "qlq-c31"),
        "id",
        "does not match the folder name 'qlq-c30'",
        id="id-not-folder",
    ),
    pytest.param(
        _set(["version"], "3.1"),
        "version",
        "does not match the file name '3.0.yaml'",
        id="version-not-file-name",
    ),
    pytest.param(
        _set(["version"], 3.0),
        "version",
        "must be a string, not a decimal number (3.0)",
        id="version-not-a-string",
    ),
    pytest.param(
        _set(["response_sets", "four_point", "codes", 2, "code"], 2.5),
        "response_sets.four_point.codes[2].code",
        "must be an integer",
        id="code-not-integer",
    ),
    pytest.param(
        _set(["response_sets", "four_point", "codes", 2, "code"], 3.0),
        "response_sets.four_point.codes[2].code",
        "must be a whole number written without decimals, not 3.0",
        id="code-as-decimal",
    ),
    pytest.param(
        _set(["response_sets", "four_point", "codes", 2, "code"], 2),
        "response_sets.four_point.codes[2].code",
        "code 2 appears twice",
        id="duplicate-code",
    ),
    pytest.param(
        _set(["response_sets", "four_point", "codes", 2, "code"], 0),
        "response_sets.four_point.codes[2].code",
        "codes must be in ascending order (0 after 2)",
        id="descending-code",
    ),
    pytest.param(
        _set(["response_sets", "four_point", "codes", 1, "code"], True),
        "response_sets.four_point.codes[1].code",
        "must be an integer, not a boolean (True)",
        id="code-boolean",
    ),
    pytest.param(
        _set(["screens", 1, "items"], [6, 7, 8]),
        "screens[2].items[0]",
        "item 8 is already on screens[1]",
        id="item-on-two-screens",
    ),
    pytest.param(
        _set(["screens", 6, "items"], []),
        "screens[6].items",
        "needs at least 1 entries",
        id="empty-screen",
    ),
    pytest.param(
        _delete(["screens", 6]),
        "screens",
        "item 28 is on no screen",
        id="item-on-no-screen",
    ),
    pytest.param(
        _set(["scales", 1, "items"], [1, 2, 3, 4, 31]),
        "scales[1].items[4]",
        "scale PF2: item 31 does not exist",
        id="scale-unknown-item",
    ),
    pytest.param(
        _set(["scales", 1, "items"], [1, 2, 3, 4, 29]),
        "scales[1].items",
        "scale PF2: its items have different code ranges (1-4, 1-7)",
        id="scale-mixed-ranges",
    ),
    pytest.param(
        _set(["scales", 2, "type"], "functonal"),
        "scales[2].type",
        "'functonal' is not one of 'functional', 'symptom', 'global'",
        id="scale-type-typo",
    ),
    pytest.param(
        _set(["scales", 2, "code"], "PF2"),
        "scales[2].code",
        "score code 'PF2' appears twice",
        id="duplicate-scale-code",
    ),
    pytest.param(
        _delete(["scales", 15 - 1, "direction_verified"]),
        "scales[14].direction_verified",
        "is required but missing",
        id="missing-field",
    ),
    pytest.param(
        _set(["items", 2, "respone_set"], "four_point"),
        "items[2].respone_set",
        "unknown field (allowed: number, recall, response_set, text)",
        id="misspelt-field",
    ),
    pytest.param(
        _set(["summary_scores", 0, "components"], ["PF2", "RF2", "XX"]),
        "summary_scores[0].components[2]",
        "'XX' is not a scale of this file",
        id="summary-unknown-component",
    ),
    pytest.param(
        _set(["summary_scores", 0, "reversed"], ["FA", "QL2"]),
        "summary_scores[0].reversed[1]",
        "'QL2' is not one of the components",
        id="summary-reversed-not-component",
    ),
    pytest.param(
        _set(["first_item"], 0),
        "first_item",
        "must be at least 1, not 0",
        id="first-item-zero",
    ),
]


@pytest.mark.parametrize(("edit", "field", "problem"), BAD_FILES)
def test_bad_instrument_file_names_file_field_and_problem(
    tmp_path: Path, edit: Edit, field: str, problem: str
):
    document = copy.deepcopy(_real(C30_FILE))
    edit(document)
    path = _write(tmp_path, document)
    with pytest.raises(InstrumentFileError) as raised:
        load_instrument(path)
    error = raised.value
    assert error.path == path
    assert any(f == field and problem in p for f, p in error.problems), str(error)
    assert f"{path}: {field}: " in str(error)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("id: [unclosed\n", "invalid YAML: line 2, column 1", id="syntax"),
        pytest.param(
            "id: a\nid: b\n", "invalid YAML: line 2, column 1: duplicate key 'id'", id="dup"
        ),
        pytest.param("- a list\n", "must be a YAML mapping, not a list", id="not-a-mapping"),
        pytest.param("", "must be a YAML mapping, not empty", id="empty"),
    ],
)
def test_unreadable_instrument_file_names_file_and_problem(tmp_path: Path, text: str, problem: str):
    path = _write(tmp_path, text)
    with pytest.raises(InstrumentFileError) as raised:
        load_instrument(path)
    assert str(raised.value).startswith(f"{path}: {problem}")


def test_duplicate_key_deep_in_the_file_is_reported(tmp_path: Path):
    text = C30_FILE.read_text(encoding="utf-8").replace(
        "    recall: past_week\n", "    recall: past_week\n    recall: none\n", 1
    )
    path = _write(tmp_path, text)
    with pytest.raises(InstrumentFileError, match="duplicate key 'recall'"):
        load_instrument(path)


def test_unquoted_version_in_yaml_is_reported(tmp_path: Path):
    text = C30_FILE.read_text(encoding="utf-8").replace('version: "3.0"', "version: 3.0")
    path = _write(tmp_path, text)
    with pytest.raises(InstrumentFileError) as raised:
        load_instrument(path)
    assert "version: must be a string, not a decimal number (3.0)" in str(raised.value)


def test_all_problems_of_a_file_are_reported_together(tmp_path: Path):
    document = _real(C30_FILE)
    document["items"][3]["response_set"] = "five_point"
    document["scales"][0]["items"] = [29, 31]
    path = _write(tmp_path, document)
    with pytest.raises(InstrumentFileError) as raised:
        load_instrument(path)
    fields = [field for field, _ in raised.value.problems]
    assert fields == ["items[3].response_set", "scales[0].items[1]"]
    assert len(str(raised.value).splitlines()) == 2


# --------------------------------------------------------------------------------------------
# The questionnaire folder


def test_non_yaml_files_and_the_schedules_folder_are_skipped(data_dir: Path):
    (data_dir / "qlq-c30" / "notes.txt").write_text("not an instrument", encoding="utf-8")
    (data_dir / "qlq-c30" / ".3.0.yaml.swp").write_text("editor junk", encoding="utf-8")
    assert (data_dir / "README.md").is_file()
    assert (data_dir / "schedules" / "scanpan.yaml").is_file()
    registry = load_instruments(data_dir)
    assert [i.key for i in registry] == ["qlq-c30:3.0", "qlq-pan26:1.0"]


def test_a_folder_without_instruments_is_an_error(tmp_path: Path):
    (tmp_path / "schedules").mkdir()
    (tmp_path / "README.md").write_text("nothing here", encoding="utf-8")
    with pytest.raises(InstrumentFileError, match="no instrument files found"):
        load_instruments(tmp_path)
    with pytest.raises(InstrumentFileError, match="the questionnaire folder does not exist"):
        load_instruments(tmp_path / "missing")


def test_a_yml_file_is_an_error_not_skipped(data_dir: Path):
    (data_dir / "qlq-c30" / "3.0.yaml").rename(data_dir / "qlq-c30" / "3.0.yml")
    with pytest.raises(InstrumentFileError, match=r"3\.0\.yml: name the file <version>\.yaml"):
        load_instruments(data_dir)


def test_a_bad_file_stops_loading_the_folder(data_dir: Path):
    document = _real(PAN26_FILE)
    document["scales"][3]["items"] = [99]
    _write(data_dir, document, "qlq-pan26/1.0.yaml")
    with pytest.raises(InstrumentFileError) as raised:
        load_instruments(data_dir)
    assert raised.value.path == data_dir / "qlq-pan26" / "1.0.yaml"
    assert raised.value.field == "scales[3].items[0]"


def test_several_versions_are_kept_and_the_latest_is_the_default(data_dir: Path):
    document = _real(C30_FILE)
    document["version"] = "3.10"
    _write(data_dir, document, "qlq-c30/3.10.yaml")
    registry = load_instruments(data_dir)
    assert registry.versions("qlq-c30") == ("3.0", "3.10")
    assert registry.get("qlq-c30").version == "3.10"  # 3.10 is newer than 3.9, not older
    assert registry.get("qlq-c30", "3.0").version == "3.0"
    assert [i.key for i in registry.latest()] == ["qlq-c30:3.10", "qlq-pan26:1.0"]


def test_instruments_whose_item_numbers_overlap_are_rejected(data_dir: Path):
    document = _real(PAN26_FILE)
    document["first_item"] = 30
    for i, item in enumerate(document["items"]):
        item["number"] = 30 + i
    for screen in document["screens"]:
        screen["items"] = [n - 1 for n in screen["items"]]
    for scale in document["scales"]:
        scale["items"] = [n - 1 for n in scale["items"]]
    _write(data_dir, document, "qlq-pan26/1.0.yaml")
    with pytest.raises(InstrumentFileError) as raised:
        load_instruments(data_dir)
    assert raised.value.field == "first_item"
    assert "items 30-55 overlap qlq-c30:3.0 (items 1-30)" in str(raised.value)


def test_instruments_sharing_a_score_name_are_rejected(data_dir: Path):
    document = _real(PAN26_FILE)
    document["scales"][0]["code"] = "PF2"
    _write(data_dir, document, "qlq-pan26/1.0.yaml")
    with pytest.raises(InstrumentFileError, match="score code.s. PF2 also used by qlq-c30:3.0"):
        load_instruments(data_dir)


# --------------------------------------------------------------------------------------------
# Licensed-text overrides


def _override(text_dir: Path, lang: str, document: dict[str, Any], version: str = "3.0") -> Path:
    return _write(text_dir, document, f"qlq-c30/{version}/{lang}.yaml")


LICENSED_SV = {
    "source": "EORTC QLQ-C30 3.0, official Swedish translation (test stand-in)",
    "items": {1: "LICENSED SV ITEM 1", 29: "LICENSED SV ITEM 29"},
    "response_labels": {"four_point": {1: "LICENSED SV NOT AT ALL"}},
    "recall_periods": {"past_week": "LICENSED SV PAST WEEK"},
    "screen_headings": {0: "LICENSED SV HEADING 0"},
}


def test_licensed_override_replaces_text_for_one_language_only(c30: Instrument, tmp_path: Path):
    text_dir = tmp_path / "licensed"
    _override(text_dir, "sv", LICENSED_SV)
    registry = load_instruments(QUESTIONNAIRES, text_dir)
    licensed = registry.get("qlq-c30")

    assert licensed.item_text(1, "sv") == "LICENSED SV ITEM 1"
    assert licensed.item_text(29, "sv") == "LICENSED SV ITEM 29"
    assert licensed.item_text(2, "sv") == c30.item_text(2, "sv")  # not overridden: paraphrase
    assert licensed.label(1, 1, "sv") == "LICENSED SV NOT AT ALL"
    assert licensed.label(28, 1, "sv") == "LICENSED SV NOT AT ALL"  # every four-point item
    assert licensed.label(1, 2, "sv") == c30.label(1, 2, "sv")
    assert licensed.response_sets["four_point"].label(1, "sv") == "LICENSED SV NOT AT ALL"
    assert licensed.recall_text(6, "sv") == "LICENSED SV PAST WEEK"
    assert licensed.recall_text(1, "sv") == c30.recall_text(1, "sv")
    assert licensed.screens[0].heading is not None
    assert licensed.screens[0].heading["sv"] == "LICENSED SV HEADING 0"
    assert licensed.is_licensed("sv") and not licensed.is_licensed("fi")
    assert licensed.licensed_text == {"sv": LICENSED_SV["source"]}

    for lang in ("fi", "en"):  # the other languages keep the paraphrases
        for number in licensed.items:
            assert licensed.item_text(number, lang) == c30.item_text(number, lang)
            assert licensed.recall_text(number, lang) == c30.recall_text(number, lang)
            for code in licensed.items[number].codes:
                assert licensed.label(number, code, lang) == c30.label(number, code, lang)
        assert licensed.screens[0].heading == {
            **c30.screens[0].heading,
            "sv": "LICENSED SV HEADING 0",
        }
    # Numbers, codes, screens and scales never come from an override.
    assert licensed.scales == c30.scales and licensed.summary_scores == c30.summary_scores
    assert [s.items for s in licensed.screens] == [s.items for s in c30.screens]
    assert registry.get("qlq-pan26").licensed_text == {}


def test_quoted_number_keys_are_accepted_in_an_override(tmp_path: Path):
    _override(tmp_path, "en", {"source": "test", "items": {"3": "LICENSED EN 3"}})
    licensed = load_instrument(C30_FILE, tmp_path)
    assert licensed.item_text(3, "en") == "LICENSED EN 3"


BAD_OVERRIDES: list[Any] = [
    pytest.param(
        "sv", {"source": "x", "items": {99: "t"}}, "items.99", "has no item 99", id="item"
    ),
    pytest.param(
        "sv",
        {"source": "x", "response_labels": {"four_point": {5: "t"}}},
        "response_labels.four_point.5",
        "response set 'four_point' has no code 5",
        id="code",
    ),
    pytest.param(
        "sv",
        {"source": "x", "response_labels": {"yes_no": {1: "t"}}},
        "response_labels.yes_no",
        "qlq-c30:3.0 has no response set 'yes_no'",
        id="response-set",
    ),
    pytest.param(
        "sv",
        {"source": "x", "recall_periods": {"past_month": "t"}},
        "recall_periods.past_month",
        "qlq-c30:3.0 has no recall period 'past_month'",
        id="recall",
    ),
    pytest.param(
        "sv",
        {"source": "x", "screen_headings": {8: "t"}},
        "screen_headings.8",
        "qlq-c30:3.0 has no screen 8 (screens are numbered 0-7)",
        id="screen",
    ),
    pytest.param(
        "sv",
        {"source": "x", "item": {1: "t"}},
        "item",
        "unknown field",
        id="misspelt-field",
    ),
    pytest.param("sv", {"items": {1: "t"}}, "source", "is required but missing", id="no-source"),
    pytest.param(
        "sv", {"source": "x", "items": {1: ""}}, "items.1", "must not be empty", id="empty-text"
    ),
    pytest.param("de", {"source": "x"}, "", "'de' is not a language of qlq-c30:3.0", id="lang"),
]


@pytest.mark.parametrize(("lang", "document", "field", "problem"), BAD_OVERRIDES)
def test_bad_override_names_file_field_and_problem(
    tmp_path: Path, lang: str, document: dict[str, Any], field: str, problem: str
):
    path = _override(tmp_path, lang, document)
    with pytest.raises(InstrumentFileError) as raised:
        load_instruments(QUESTIONNAIRES, tmp_path)
    error = raised.value
    assert error.path == path
    assert error.field == field
    assert problem in error.problem
    assert str(error).startswith(f"{path}: ")


def test_override_folder_for_an_unknown_instrument_or_version_is_an_error(tmp_path: Path):
    _write(tmp_path, {"source": "x"}, "qlq-c3O/3.0/sv.yaml")
    with pytest.raises(InstrumentFileError, match="no instrument 'qlq-c3O'"):
        load_instruments(QUESTIONNAIRES, tmp_path)
    (tmp_path / "qlq-c3O" / "3.0" / "sv.yaml").unlink()
    (tmp_path / "qlq-c3O" / "3.0").rmdir()
    (tmp_path / "qlq-c3O").rmdir()
    _override(tmp_path, "sv", {"source": "x"}, version="2.0")
    with pytest.raises(InstrumentFileError, match="no version '2.0' of qlq-c30"):
        load_instruments(QUESTIONNAIRES, tmp_path)


def test_missing_override_folder_is_an_error(tmp_path: Path):
    with pytest.raises(InstrumentFileError, match="the licensed-text folder does not exist"):
        load_instruments(QUESTIONNAIRES, tmp_path / "missing")


def test_override_schema_accepts_the_documented_example():
    example = {
        "source": "EORTC QLQ-C30 3.0, official Swedish translation (licensed)",
        "items": {"1": "...", "2": "..."},
        "response_labels": {"four_point": {"1": "...", "2": "..."}},
        "recall_periods": {"past_week": "..."},
        "screen_headings": {"0": "..."},
    }
    jsonschema.validate(example, TEXT_OVERRIDE_SCHEMA)
