"""JSON schemas (draft 2020-12) for instrument files and licensed-text override files.

The schemas check shape and types only. Everything that relates one part of a file to another
(item numbering, references to response sets, recall periods, items and scales, languages) is
checked by the loader afterwards, with messages that name the field.

Mapping keys are validated as strings: the loader hands the validator a copy of the document in
which every key is ``str(key)``, because YAML turns ``{1: ...}`` into integer keys.
"""

from __future__ import annotations

from typing import Any

LANGUAGE_PATTERN = "^[a-z]{2,3}$"
IDENTIFIER_PATTERN = "^[a-z][a-z0-9_]*$"
INSTRUMENT_ID_PATTERN = "^[a-z][a-z0-9-]*$"
VERSION_PATTERN = "^[0-9A-Za-z][0-9A-Za-z.-]*$"
SCORE_CODE_PATTERN = "^[A-Z][A-Z0-9_]*$"


def _text(*, min_length: int = 1) -> dict[str, Any]:
    """Per-language text: ``{sv: "...", fi: "...", en: "..."}``."""
    return {
        "type": "object",
        "minProperties": 1,
        "patternProperties": {LANGUAGE_PATTERN: {"type": "string", "minLength": min_length}},
        "additionalProperties": False,
    }


_ITEM_NUMBER: dict[str, Any] = {"type": "integer", "minimum": 1}

INSTRUMENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "PRO service instrument file",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "id",
        "version",
        "name",
        "languages",
        "text_source",
        "paraphrase_notice",
        "first_item",
        "response_sets",
        "recall_periods",
        "items",
        "screens",
        "scales",
    ],
    "properties": {
        "id": {"type": "string", "pattern": INSTRUMENT_ID_PATTERN},
        "version": {"type": "string", "pattern": VERSION_PATTERN},
        "name": _text(),
        "languages": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "pattern": LANGUAGE_PATTERN},
        },
        "text_source": {"enum": ["paraphrase", "licensed"]},
        "paraphrase_notice": _text(),
        "first_item": _ITEM_NUMBER,
        "response_sets": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": IDENTIFIER_PATTERN},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["codes"],
                "properties": {
                    "codes": {
                        "type": "array",
                        "minItems": 2,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["code", "label"],
                            "properties": {
                                "code": {"type": "integer"},
                                "label": _text(),
                            },
                        },
                    }
                },
            },
        },
        "recall_periods": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": IDENTIFIER_PATTERN},
            "additionalProperties": _text(min_length=0),
        },
        "items": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["number", "response_set", "recall", "text"],
                "properties": {
                    "number": _ITEM_NUMBER,
                    "response_set": {"type": "string"},
                    "recall": {"type": "string"},
                    "text": _text(),
                },
            },
        },
        "screens": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["items"],
                "properties": {
                    "items": {"type": "array", "minItems": 1, "items": _ITEM_NUMBER},
                    "heading": _text(),
                },
            },
        },
        "scales": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "name", "type", "items", "direction_verified"],
                "properties": {
                    "code": {"type": "string", "pattern": SCORE_CODE_PATTERN},
                    "name": _text(),
                    "type": {"enum": ["functional", "symptom", "global"]},
                    "transform": {"enum": ["functional", "symptom"]},
                    "items": {"type": "array", "minItems": 1, "items": _ITEM_NUMBER},
                    "direction_verified": {"type": "boolean"},
                },
            },
        },
        "summary_scores": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "name", "components"],
                "properties": {
                    "code": {"type": "string", "pattern": SCORE_CODE_PATTERN},
                    "name": _text(),
                    "components": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string"},
                    },
                    "reversed": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}

_NUMBER_KEY = "^[0-9]+$"

TEXT_OVERRIDE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Licensed official text for one language of one instrument version",
    "type": "object",
    "additionalProperties": False,
    "required": ["source"],
    "properties": {
        "source": {"type": "string", "minLength": 1},
        "items": {
            "type": "object",
            "propertyNames": {"pattern": _NUMBER_KEY},
            "additionalProperties": {"type": "string", "minLength": 1},
        },
        "response_labels": {
            "type": "object",
            "propertyNames": {"pattern": IDENTIFIER_PATTERN},
            "additionalProperties": {
                "type": "object",
                "propertyNames": {"pattern": "^-?[0-9]+$"},
                "additionalProperties": {"type": "string", "minLength": 1},
            },
        },
        "recall_periods": {
            "type": "object",
            "propertyNames": {"pattern": IDENTIFIER_PATTERN},
            "additionalProperties": {"type": "string"},
        },
        "screen_headings": {
            "type": "object",
            "propertyNames": {"pattern": _NUMBER_KEY},
            "additionalProperties": {"type": "string", "minLength": 1},
        },
    },
}
