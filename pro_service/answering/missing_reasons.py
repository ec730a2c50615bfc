"""The reasons a missed time point can carry, kept as data in
``questionnaires/missing-reasons.yaml``: loaded and checked at start-up. Plain Python with no
database, so every command checks the file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

LANGS = ("sv", "fi", "en")
CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
#: Reasons the service proposes when it knows them itself; they must be in the reason file.
NOT_DELIVERED = "not-delivered"
DECLINED = "declined"
TEXT_LIMIT = 500


class MissingReasonFileError(ValueError):
    def __init__(self, path: Path, field: str, problem: str) -> None:
        super().__init__(f"{path}: {field}: {problem}")


@dataclass(frozen=True)
class MissingReason:
    code: str
    labels: dict[str, str]
    needs_text: bool

    def label(self, language: str) -> str:
        return self.labels.get(language, self.labels["en"])


@dataclass(frozen=True)
class MissingReasons:
    reasons: tuple[MissingReason, ...]

    def get(self, code: str) -> MissingReason | None:
        return next((reason for reason in self.reasons if reason.code == code), None)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(reason.code for reason in self.reasons)


def load_missing_reasons(path: Path) -> MissingReasons:
    """Load and validate the reason list; any problem names the file and the field."""
    if not path.is_file():
        raise MissingReasonFileError(path, "(file)", "the missing-reason file does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MissingReasonFileError(path, "(file)", f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise MissingReasonFileError(path, "(top level)", "must map reason codes to labels")
    reasons = []
    for code, entry in data.items():
        if not isinstance(code, str) or not CODE.match(code):
            raise MissingReasonFileError(
                path, str(code), "a code is lower-case letters, digits and dashes (at most 40)"
            )
        if not isinstance(entry, dict):
            raise MissingReasonFileError(path, code, "give a label for sv, fi and en")
        extra = sorted(set(entry) - {*LANGS, "text"})
        if extra:
            raise MissingReasonFileError(
                path, f"{code}.{extra[0]}", "unknown key (known: sv, fi, en, text)"
            )
        labels = {}
        for lang in LANGS:
            label = entry.get(lang)
            if not isinstance(label, str) or not label.strip():
                raise MissingReasonFileError(path, f"{code}.{lang}", "missing or empty")
            labels[lang] = label.strip()
        text = entry.get("text")
        if text not in (None, "required"):
            raise MissingReasonFileError(path, f"{code}.text", "the only value is 'required'")
        reasons.append(MissingReason(code=code, labels=labels, needs_text=text == "required"))
    known = {reason.code for reason in reasons}
    for proposed in (NOT_DELIVERED, DECLINED):
        if proposed not in known:
            raise MissingReasonFileError(
                path, proposed, "the service proposes this reason itself: keep it in the list"
            )
    return MissingReasons(tuple(reasons))
