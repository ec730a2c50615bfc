from __future__ import annotations

from pathlib import Path

import pytest

from pro_service.crypto import new_link_token
from pro_service.messaging.texts import (
    KINDS,
    LANGS,
    LINK_KINDS,
    MessageFileError,
    gsm7_septets,
    load_message_texts,
    patient_link,
)
from pro_service.settings import PROJECT_ROOT

MESSAGES = PROJECT_ROOT / "questionnaires" / "messages.yaml"
BASE_URLS = ("https://pro.example.test", "https://enkat.scanpan-studien.example.se")


@pytest.mark.parametrize("base_url", BASE_URLS)
@pytest.mark.parametrize("language", LANGS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_text_fits_one_gsm7_sms_with_the_configured_link(kind, language, base_url):
    texts = load_message_texts(MESSAGES, base_url)
    link = patient_link(base_url, new_link_token())
    rendered = texts.render(kind, language, link if kind in LINK_KINDS else None)
    septets = gsm7_septets(rendered)
    assert septets is not None, f"{kind}.{language} has a character outside GSM-7"
    assert septets <= 160
    if kind in LINK_KINDS:
        assert rendered.count(link) == 1
    assert "{" not in rendered


@pytest.mark.parametrize("language", LANGS)
@pytest.mark.parametrize("kind", KINDS)
def test_no_text_mentions_health(kind, language):
    text = load_message_texts(MESSAGES, BASE_URLS[0]).texts[kind][language].casefold()
    for word in ("cancer", "syöpä", "tumör", "pankreas", "bukspott", "haima", "kemo", "leikkau"):
        assert word not in text


def test_swedish_and_finnish_texts_tell_the_patient_how_to_stop():
    texts = load_message_texts(MESSAGES, BASE_URLS[0]).texts
    assert "STOPP" in texts["invitation"]["sv"]
    assert "LOPETA" in texts["invitation"]["fi"]
    assert "STOP" in texts["invitation"]["en"]


def _write(tmp_path: Path, **changes: dict[str, str]) -> Path:
    import yaml

    data = yaml.safe_load(MESSAGES.read_text(encoding="utf-8"))
    for kind, per_language in changes.items():
        data[kind].update(per_language)
    path = tmp_path / "messages.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_a_base_url_too_long_for_one_sms_stops_start_up_naming_the_text():
    long_url = "https://" + "x" * 80 + ".example.org"
    with pytest.raises(MessageFileError, match=r"invitation\.sv: .*one SMS holds 160"):
        load_message_texts(MESSAGES, long_url)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Hej! Din enkät: {link} 😊", "not in the GSM-7 alphabet"),
        ("Hej! Din enkät är klar.", "needs {link} exactly once"),
        ("Hej {name}: {link}", "needs {link} exactly once"),
        ("Enkät om din cancer: {link}", "must not reveal health information"),
    ],
)
def test_a_bad_text_is_refused_with_the_file_the_entry_and_the_problem(tmp_path, text, problem):
    path = _write(tmp_path, reminder={"sv": text})
    with pytest.raises(MessageFileError) as caught:
        load_message_texts(path, BASE_URLS[0])
    assert str(path) in str(caught.value)
    assert "reminder.sv" in str(caught.value)
    assert problem in str(caught.value)


def test_a_missing_language_is_refused(tmp_path):
    import yaml

    data = yaml.safe_load(MESSAGES.read_text(encoding="utf-8"))
    del data["resend"]["fi"]
    path = tmp_path / "messages.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(MessageFileError, match=r"resend\.fi: missing or empty"):
        load_message_texts(path, BASE_URLS[0])
