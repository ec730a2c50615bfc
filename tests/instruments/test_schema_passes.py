"""A file that passed its schema check is not checked against the schema again while its bytes,
the schema and the installed jsonschema stay the same; anything else is checked afresh, and a
file with problems reports them every time."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pro_service.instruments import (
    INSTRUMENT_SCHEMA,
    InstrumentFileError,
    SchemaPasses,
    load_instruments,
    validation,
)

from .conftest import QUESTIONNAIRES


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    copy = tmp_path / "questionnaires"
    shutil.copytree(QUESTIONNAIRES, copy)
    return copy


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The schema checks made, one entry per file checked."""
    made: list[str] = []
    real = validation._schema_problems

    def spy(document, schema):  # type: ignore[no-untyped-def]
        made.append(str(document.get("id", "override")))
        return real(document, schema)

    monkeypatch.setattr(validation, "_schema_problems", spy)
    return made


def _summary(registry) -> list[tuple[str, str, int, tuple[str, ...]]]:  # type: ignore[no-untyped-def]
    return [(i.id, i.version, len(i.items), i.score_codes) for i in registry.latest()]


def test_an_unchanged_file_is_checked_once(folder: Path, tmp_path: Path, checked: list[str]):
    passes = SchemaPasses(tmp_path / "instance" / "cache" / "schema-passes")
    first = load_instruments(folder, passes=passes)
    assert sorted(checked) == ["qlq-c30", "qlq-pan26"]
    assert len(list(passes.folder.iterdir())) == 2

    checked.clear()
    again = load_instruments(folder, passes=passes)
    assert checked == []
    assert _summary(again) == _summary(first)

    # Without passes, every file is checked, as always.
    load_instruments(folder)
    assert sorted(checked) == ["qlq-c30", "qlq-pan26"]


def test_a_changed_file_is_checked_again(folder: Path, tmp_path: Path, checked: list[str]):
    passes = SchemaPasses(tmp_path / "passes")
    load_instruments(folder, passes=passes)
    checked.clear()
    path = folder / "qlq-pan26" / "1.0.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    load_instruments(folder, passes=passes)
    assert checked == ["qlq-pan26"]


def test_a_file_with_problems_is_never_remembered(folder: Path, tmp_path: Path, checked: list[str]):
    passes = SchemaPasses(tmp_path / "passes")
    path = folder / "qlq-pan26" / "1.0.yaml"
    text = path.read_text(encoding="utf-8")
    assert "\nlanguages:" in text
    path.write_text(text.replace("\nlanguages:", "\nlanguages_:", 1), encoding="utf-8")
    for _ in range(2):
        with pytest.raises(InstrumentFileError) as caught:
            load_instruments(folder, passes=passes)
        assert "languages" in str(caught.value)
    assert checked.count("qlq-pan26") == 2
    assert [p.name for p in passes.folder.iterdir()] == [
        passes.key(INSTRUMENT_SCHEMA, (folder / "qlq-c30" / "3.0.yaml").read_bytes())
    ]


def test_another_schema_or_validator_is_another_pass(tmp_path: Path, monkeypatch):
    passes = SchemaPasses(tmp_path / "passes")
    content = b"id: x\n"
    key = passes.key({"type": "object"}, content)
    assert key != passes.key({"type": "object", "required": ["id"]}, content)
    assert key != passes.key({"type": "object"}, content + b" ")
    monkeypatch.setattr(validation, "_validator_identity", lambda: b"jsonschema 9.9")
    assert key != passes.key({"type": "object"}, content)


def test_a_folder_that_cannot_be_written_only_means_checking_every_time(
    folder: Path, tmp_path: Path, checked: list[str]
):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("", encoding="utf-8")
    passes = SchemaPasses(blocked / "passes")
    for _ in range(2):
        load_instruments(folder, passes=passes)
    assert sorted(checked) == ["qlq-c30", "qlq-c30", "qlq-pan26", "qlq-pan26"]
