"""SMS texts from ``questionnaires/messages.yaml``: loaded, validated and rendered.

Plain Python: no Flask, no database. A bad file stops start-up naming the file, the entry and
the problem.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..crypto import new_link_token

LANGS = ("sv", "fi", "en")
LINK_KINDS = ("invitation", "reminder", "resend")
REPLY_KINDS = ("opt_out", "opt_in")
KINDS = LINK_KINDS + REPLY_KINDS
SEGMENT_SEPTETS = 160

# GSM 03.38 basic character set (one septet each) and its extension table (two septets each).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

# Words that would tell a reader of the phone's screen something about the patient's health.
HEALTH_WORDS = (
    "cancer",
    "tumör",
    "tumor",
    "syöpä",
    "syöv",
    "kasvain",
    "diagnos",
    "metasta",
    "pancrea",
    "pankrea",
    "bukspott",
    "haima",
    "cellgift",
    "cytostat",
    "cytotox",
    "chemo",
    "kemoterap",
    "solunsalpaaj",
    "surgery",
    "operation",
    "operer",
    "leikkau",
    "kirurg",
    "oncolog",
    "onkolog",
    "hospital",
    "sjukhus",
    "sairaala",
)


class MessageFileError(ValueError):
    def __init__(self, path: Path, field: str, problem: str) -> None:
        self.path, self.field, self.problem = path, field, problem
        super().__init__(f"{path}: {field}: {problem}")


def patient_link(base_url: str, token: str) -> str:
    """The address in a patient's SMS."""
    return f"{base_url.rstrip('/')}/q/{token}"


def gsm7_septets(text: str) -> int | None:
    """Length of ``text`` in GSM-7 septets, or None if a character is not in GSM-7."""
    total = 0
    for char in text:
        if char in GSM7_BASIC:
            total += 1
        elif char in GSM7_EXTENSION:
            total += 2
        else:
            return None
    return total


@dataclass(frozen=True)
class MessageTexts:
    texts: dict[str, dict[str, str]]
    source_path: Path

    def render(self, kind: str, language: str, link: str | None = None) -> str:
        template = self.texts[kind][language]
        if kind in LINK_KINDS:
            if link is None:
                raise ValueError(f"the {kind} text needs a link")
            return template.replace("{link}", link)
        return template


def _check_text(path: Path, field: str, kind: str, text: str, sample_link: str) -> None:
    placeholders = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    if kind in LINK_KINDS:
        if placeholders != ["link"]:
            raise MessageFileError(
                path, field, f"needs {{link}} exactly once and no other placeholder: {text!r}"
            )
        rendered = text.replace("{link}", sample_link)
    else:
        if placeholders:
            raise MessageFileError(path, field, f"takes no placeholders: {text!r}")
        rendered = text
    for char in rendered:
        if gsm7_septets(char) is None:
            raise MessageFileError(
                path, field, f"character {char!r} is not in the GSM-7 alphabet (SMS would split)"
            )
    septets = gsm7_septets(rendered) or 0
    if septets > SEGMENT_SEPTETS:
        raise MessageFileError(
            path,
            field,
            f"{septets} characters with the link {sample_link!r}; one SMS holds "
            f"{SEGMENT_SEPTETS} (shorten the text or PRO_PUBLIC_BASE_URL)",
        )
    lowered = text.casefold()
    for word in HEALTH_WORDS:
        if word in lowered:
            raise MessageFileError(
                path, field, f"contains {word!r}: an SMS must not reveal health information"
            )


def load_message_texts(path: Path, base_url: str) -> MessageTexts:
    """Load and validate the texts; every link text must fit one SMS with ``base_url``."""
    if not path.is_file():
        raise MessageFileError(path, "(file)", "the message file does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MessageFileError(path, "(file)", f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise MessageFileError(path, "(top level)", "must map message kinds to texts")
    unknown = sorted(set(data) - set(KINDS))
    if unknown:
        raise MessageFileError(path, unknown[0], f"unknown kind (known: {', '.join(KINDS)})")
    sample_link = patient_link(base_url, "x" * len(new_link_token()))
    texts: dict[str, dict[str, str]] = {}
    for kind in KINDS:
        entry = data.get(kind)
        if not isinstance(entry, dict):
            raise MessageFileError(path, kind, "missing: give a text for sv, fi and en")
        extra = sorted(set(entry) - set(LANGS))
        if extra:
            raise MessageFileError(path, f"{kind}.{extra[0]}", "unknown language")
        texts[kind] = {}
        for lang in LANGS:
            text = entry.get(lang)
            field = f"{kind}.{lang}"
            if not isinstance(text, str) or not text.strip():
                raise MessageFileError(path, field, "missing or empty")
            _check_text(path, field, kind, text.strip(), sample_link)
            texts[kind][lang] = text.strip()
    return MessageTexts(texts=texts, source_path=path)
