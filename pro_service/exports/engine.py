"""Writing an export to a file: the data file plus its data dictionary, both or neither.

Both files are written to temporary files next to their targets and moved into place with
``os.replace`` only when everything succeeded; on any error the temporary files are removed and
an existing file at the target is left as it was.
"""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, cast, get_args

from sqlalchemy.orm import Session

from ..instruments import InstrumentRegistry
from ..scheduling.schedule import Schedule
from .fhir import fhir_resources, has_response, write_ndjson
from .layout import Variable, long_variables, wide_layout, write_dictionary
from .long_table import LongTable
from .source import (
    ExportFilters,
    Selection,
    count_assessments,
    iter_assessments,
    resolve_filters,
)
from .statistics import write_statistics_file
from .tables import Counted
from .wide_table import WideTable, typed_wide_rows

ExportFormat = Literal["long", "wide", "sav", "dta", "fhir"]
FORMATS: tuple[str, ...] = get_args(ExportFormat)
SUFFIXES = {"long": ".csv", "wide": ".csv", "sav": ".sav", "dta": ".dta", "fhir": ".ndjson"}
MEDIA_TYPES = {
    "long": "text/csv; charset=utf-8",
    "wide": "text/csv; charset=utf-8",
    "sav": "application/x-spss-sav",
    "dta": "application/x-stata-dta",
    "fhir": "application/fhir+ndjson",
}


class ExportPathError(OSError):
    """The output path cannot be written; the message says why."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    dictionary_path: Path
    rows: int  # data rows (CSV, sav, dta) or QuestionnaireResponses (fhir)
    assessments: int

    @property
    def empty(self) -> bool:
        return self.assessments == 0


def dictionary_path_for(path: Path) -> Path:
    return path.with_name(path.name + ".dictionary.csv")


def check_format(fmt: str) -> ExportFormat:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (choose one of {', '.join(FORMATS)})")
    return cast(ExportFormat, fmt)


def check_writable(path: Path) -> None:
    """Fail early, before any query, when ``path`` cannot be written."""
    parent = path.parent
    if path.is_dir():
        raise ExportPathError(f"{path} is a folder; give a file name")
    if not parent.is_dir():
        raise ExportPathError(f"folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportPathError(f"folder {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise ExportPathError(f"{path} exists and is not writable")


def variables_for(fmt: ExportFormat, selection: Selection) -> list[Variable]:
    if fmt == "long":
        return long_variables(selection.instruments)
    return wide_layout(selection.instruments).variables


@contextlib.contextmanager
def _temporary_next_to(path: Path) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
    finally:
        temp.unlink(missing_ok=True)


def write_export(
    session: Session,
    *,
    fmt: str,
    path: Path,
    filters: ExportFilters,
    registry: InstrumentRegistry,
    schedule: Schedule,
    base_url: str,
    now: datetime,
    allowed_site_ids: frozenset[int] | set[int] | None = None,
    on_total: Callable[[int], None] | None = None,
    on_examined: Callable[[int], None] | None = None,
) -> ExportResult:
    """Export the selected time points to ``path`` and its data dictionary to
    ``path.dictionary.csv``.

    Raises ValueError for an unknown format, ExportFilterError for an unknown site, time point
    or instrument (before anything is written), ExportPathError when ``path`` is not writable.
    """
    export_format = check_format(fmt)
    path = Path(path)
    dictionary = dictionary_path_for(path)
    check_writable(path)
    selection = resolve_filters(
        session, filters, registry=registry, schedule=schedule, allowed_site_ids=allowed_site_ids
    )
    if on_total is not None:
        on_total(count_assessments(session, selection))
    with _older_objects_frozen():
        return _write(
            session,
            export_format,
            path,
            dictionary,
            selection,
            registry=registry,
            base_url=base_url,
            now=now,
            on_examined=on_examined,
        )


@contextlib.contextmanager
def _older_objects_frozen() -> Iterator[None]:
    """Keep the garbage collector off the objects that existed before the export.

    An export makes a few tuples per score, millions in all; each collection they set off would
    otherwise walk every object of the application again (about 20% of a wide export's time).
    The export's own objects are still collected.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def _replacing(path: Path, dictionary: Path) -> Iterator[tuple[Path, Path]]:
    """Temporary files for the data and the dictionary, moved onto ``path`` and ``dictionary``
    only if the block succeeds; removed on any error, leaving an older export as it was."""
    try:
        with _temporary_next_to(path) as data_temp, _temporary_next_to(dictionary) as dict_temp:
            yield data_temp, dict_temp
            os.replace(data_temp, path)
            os.replace(dict_temp, dictionary)
    except PermissionError as exc:
        raise ExportPathError(f"cannot write {exc.filename or path}: {exc.strerror}") from exc


def _write(
    session: Session,
    export_format: ExportFormat,
    path: Path,
    dictionary: Path,
    selection: Selection,
    *,
    registry: InstrumentRegistry,
    base_url: str,
    now: datetime,
    on_examined: Callable[[int], None] | None,
) -> ExportResult:
    with _replacing(path, dictionary) as (data_temp, dict_temp):
        if export_format in ("long", "wide"):
            kind = LongTable if export_format == "long" else WideTable
            table = kind(session, selection, registry=registry, on_examined=on_examined)
            with data_temp.open("wb") as binary:
                binary.writelines(table)
            rows, assessments = table.rows, table.assessments
        elif export_format in ("sav", "dta"):
            typed = typed_wide_rows(session, selection, registry=registry, on_examined=on_examined)
            layout = wide_layout(selection.instruments)
            rows = write_statistics_file(export_format, data_temp, layout, typed, created=now)
            assessments = typed.count
        else:
            # Only time points with answers have a QuestionnaireResponse.
            counted = Counted(
                a
                for a in iter_assessments(
                    session, selection, registry=registry, on_examined=on_examined
                )
                if has_response(a)
            )
            with data_temp.open("w", encoding="utf-8", newline="") as out:
                rows = write_ndjson(
                    out, fhir_resources(selection.instruments, iter(counted), base_url)
                )
            assessments = counted.count
        with dict_temp.open("w", encoding="utf-8", newline="") as out:
            write_dictionary(out, variables_for(export_format, selection))
    return ExportResult(path, dictionary, rows, assessments)
