"""The instrument engine: questionnaire data files, validation and EORTC scoring.

Plain Python, no Flask: the web app, the scheduler and the CLI all use this package.
"""

from .loader import RESERVED_FOLDERS, load_instrument, load_instruments
from .model import (
    Instrument,
    Item,
    ResponseCode,
    ResponseSet,
    Scale,
    Screen,
    SummaryScore,
    Text,
)
from .overrides import apply_text_overrides
from .registry import InstrumentRegistry
from .schema import INSTRUMENT_SCHEMA, TEXT_OVERRIDE_SCHEMA
from .scoring import (
    ALGORITHM_VERSION,
    InvalidAnswerError,
    ScaleScore,
    score_answers,
    score_instrument,
    validate_answers,
)
from .validation import InstrumentFileError, SchemaPasses

__all__ = [
    "ALGORITHM_VERSION",
    "INSTRUMENT_SCHEMA",
    "RESERVED_FOLDERS",
    "TEXT_OVERRIDE_SCHEMA",
    "Instrument",
    "InstrumentFileError",
    "InstrumentRegistry",
    "InvalidAnswerError",
    "Item",
    "ResponseCode",
    "ResponseSet",
    "Scale",
    "ScaleScore",
    "SchemaPasses",
    "Screen",
    "SummaryScore",
    "Text",
    "apply_text_overrides",
    "load_instrument",
    "load_instruments",
    "score_answers",
    "score_instrument",
    "validate_answers",
]
