"""Exports for statisticians: long and wide CSV, SPSS, Stata and FHIR, each with a dictionary.

Pseudonymised (study IDs only; no phone number, token or free text), streamed from the database
in batches, and reproducible from the stored answers and scores (see ``pro-service rescore``).
"""

from .engine import (
    FORMATS,
    MEDIA_TYPES,
    SUFFIXES,
    ExportFormat,
    ExportPathError,
    ExportResult,
    check_format,
    dictionary_path_for,
    write_export,
)
from .source import ExportFilterError, ExportFilters, resolve_filters

__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "SUFFIXES",
    "ExportFilterError",
    "ExportFilters",
    "ExportFormat",
    "ExportPathError",
    "ExportResult",
    "check_format",
    "dictionary_path_for",
    "resolve_filters",
    "write_export",
]
