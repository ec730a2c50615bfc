"""The gettext catalogs: template up to date, Swedish and Finnish complete, placeholders intact."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "translations"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|\{(\w*)\}")


def _read(path: Path):
    with path.open("rb") as handle:
        return read_po(handle)


def _ids(catalog) -> set[str]:
    return {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}


def _placeholders(text: str) -> set[str]:
    return {a or b for a, b in PLACEHOLDER.findall(text)}


def test_template_is_up_to_date_with_the_code(tmp_path):
    fresh = tmp_path / "messages.pot"
    subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "lazy_gettext",
            "-k",
            "_l",
            "--no-location",
            "--omit-header",
            "-o",
            str(fresh),
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    stale = _ids(_read(fresh)) ^ _ids(_read(TRANSLATIONS / "messages.pot"))
    assert not stale, (
        "translations/messages.pot is stale; run the extract command in README.md#translators. "
        f"Differences: {sorted(stale)[:20]}"
    )


@pytest.mark.parametrize("lang", ["sv", "fi", "en"])
def test_every_entry_is_translated_and_not_fuzzy(lang):
    template = _read(TRANSLATIONS / "messages.pot")
    catalog = _read(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po")
    problems = []
    for message in template:
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        entry = catalog.get(message.id)
        if entry is None:
            problems.append(f"missing: {key!r}")
            continue
        if entry.fuzzy:
            problems.append(f"fuzzy: {key!r}")
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        if lang != "en" and not all(strings):
            problems.append(f"untranslated: {key!r}")
    assert problems == [], f"{lang}: " + "; ".join(problems[:30])


@pytest.mark.parametrize("lang", ["sv", "fi", "en"])
def test_translations_keep_the_placeholders_of_the_source(lang):
    catalog = _read(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po")
    problems = []
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        expected = set().union(*(_placeholders(i) for i in ids))
        for string in strings:
            if string and _placeholders(string) != expected:
                problems.append(
                    f"{ids[0]!r}: {sorted(_placeholders(string))} != {sorted(expected)}"
                )
    assert problems == [], f"{lang}: " + "; ".join(problems[:30])


def test_a_catalog_left_uncompiled_is_compiled_at_start_up(tmp_path):
    """An editable install without `make`: the .po files only. The pages must not fall back to
    English unnoticed, so start-up compiles them."""
    from pro_service.web.i18n import ensure_catalogs

    for language in ("sv", "fi", "en"):
        folder = tmp_path / language / "LC_MESSAGES"
        folder.mkdir(parents=True)
        shutil.copy(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po", folder)
    ensure_catalogs(tmp_path, ("sv", "fi", "en"), production=False)
    compiled = tmp_path / "sv" / "LC_MESSAGES" / "messages.mo"
    with compiled.open("rb") as f:
        catalog = read_mo(f)
    assert catalog.get("Health questionnaire").string == "Hälsoenkät"


def test_in_production_a_missing_catalog_stops_start_up_naming_it(tmp_path):
    from pro_service.settings import ConfigurationError
    from pro_service.web.i18n import ensure_catalogs

    (tmp_path / "fi" / "LC_MESSAGES").mkdir(parents=True)
    with pytest.raises(ConfigurationError, match=r"catalog for 'fi': .*fi/LC_MESSAGES/messages.mo"):
        ensure_catalogs(tmp_path, ("fi",), production=True)
