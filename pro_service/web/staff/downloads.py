"""Exports as downloads for the staff pages: one streamed ZIP with the data and its dictionary.

The staff view checks the user with :func:`pro_service.exports.access.export_scope`, calls
:func:`export_response` and commits (the audit event) before returning the response, e.g.::

    scope = export_scope(current_user)          # ExportForbidden -> 404/403
    try:
        response = export_response(db.session, fmt=fmt, filters=filters,
                                   actor=Actor.staff(current_user.id), now=utcnow(),
                                   allowed_site_ids=scope)
    except ExportFilterError as exc:            # show exc.message next to the exc.option field
        ...
    db.session.commit()
    return response

CSV and FHIR rows are compressed and sent as they are read (the ZIP is written to the response
stream, never to disk; ``long`` and ``wide`` come from the same
:class:`pro_service.exports.long_table.LongTable` and
:class:`pro_service.exports.wide_table.WideTable` as the file export, by COPY on PostgreSQL);
sav/dta are first written to a temporary file (their headers need the row count and text widths,
see :mod:`pro_service.exports.statistics`) and then streamed from it.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from flask import Response, current_app, stream_with_context
from sqlalchemy.orm import Session

from ...audit import Actor, record
from ...exports.engine import SUFFIXES, ExportFormat, check_format, variables_for
from ...exports.fhir import fhir_resources
from ...exports.layout import wide_layout, write_dictionary
from ...exports.long_table import LongTable
from ...exports.source import ExportFilters, Selection, iter_assessments, resolve_filters
from ...exports.statistics import write_statistics_file
from ...exports.wide_table import WideTable, typed_wide_rows

CHUNK_ROWS = 200


class _Pipe(io.RawIOBase):
    """A write-only, unseekable sink whose bytes the generator hands to the client."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def _text_lines(
    fmt: ExportFormat, selection: Selection, session: Session, base_url: str
) -> Iterator[str]:
    """The FHIR NDJSON, line by line (long and wide are a :class:`LongTable`, a
    :class:`WideTable`)."""
    registry = current_app.extensions["instruments"]
    assessments = iter_assessments(session, selection, registry=registry)
    for resource in fhir_resources(selection.instruments, assessments, base_url):
        yield json.dumps(resource, ensure_ascii=False, separators=(",", ":")) + "\n"


def _zip_stream(
    fmt: ExportFormat,
    selection: Selection,
    session: Session,
    base_url: str,
    stem: str,
    *,
    now: datetime,
) -> Iterator[bytes]:
    pipe = _Pipe()
    data_name = f"{stem}{SUFFIXES[fmt]}"
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open(data_name, "w", force_zip64=True) as member:
            if fmt in ("sav", "dta"):
                with tempfile.TemporaryDirectory(prefix="pro-export-") as folder:
                    path = Path(folder) / data_name
                    layout = wide_layout(selection.instruments)
                    registry = current_app.extensions["instruments"]
                    rows = typed_wide_rows(session, selection, registry=registry)
                    write_statistics_file(fmt, path, layout, rows, created=now)
                    with path.open("rb") as source:
                        while chunk := source.read(1 << 16):
                            member.write(chunk)
                            yield pipe.drain()
            else:
                if fmt in ("long", "wide"):
                    registry = current_app.extensions["instruments"]
                    table = LongTable if fmt == "long" else WideTable
                    lines: Iterator[bytes] = iter(table(session, selection, registry=registry))
                else:
                    lines = (
                        line.encode("utf-8")
                        for line in _text_lines(fmt, selection, session, base_url)
                    )
                for n, line in enumerate(lines, 1):
                    member.write(line)
                    if n % CHUNK_ROWS == 0:
                        yield pipe.drain()
        yield pipe.drain()
        text = io.StringIO()
        write_dictionary(text, variables_for(fmt, selection))
        archive.writestr(f"{data_name}.dictionary.csv", text.getvalue())
    yield pipe.drain()


def _closing(chunks: Iterator[bytes], session: Session) -> Iterator[bytes]:
    """Stream ``chunks``, then close ``session``, which they were read from.

    The request's session is removed when the view returns, before the stream starts; the
    stream goes on using that session object, so without this its connection stayed checked out
    (in a transaction) until garbage collection, and e.g. a TRUNCATE waited for it.
    """
    try:
        yield from chunks
    finally:
        session.close()


def export_response(
    session: Session,
    *,
    fmt: str,
    filters: ExportFilters,
    actor: Actor,
    now: datetime,
    allowed_site_ids: frozenset[int] | set[int] | None = None,
) -> Response:
    """A streamed ZIP download of the export, its audit event added to ``session`` (flushed).

    Raises ValueError for an unknown format and ExportFilterError for unknown filters, before
    anything is recorded or sent. ``allowed_site_ids`` comes from ``export_scope(user)``.
    """
    export_format = check_format(fmt)
    selection = resolve_filters(
        session,
        filters,
        registry=current_app.extensions["instruments"],
        schedule=current_app.extensions["schedule"],
        allowed_site_ids=allowed_site_ids,
    )
    record(
        session,
        now=now,
        actor=actor,
        action="export.downloaded",
        object_type="export",
        after={
            "format": export_format,
            "filters": filters.describe(),
            "sites": None if selection.site_ids is None else list(selection.site_ids),
        },
    )
    session.flush()
    base_url = current_app.config["PRO_SETTINGS"].public_base_url
    stem = f"pro-export-{export_format}-{now.date().isoformat()}"
    response = Response(
        stream_with_context(
            _closing(
                _zip_stream(export_format, selection, session, base_url, stem, now=now), session
            )
        ),
        mimetype="application/zip",
    )
    response.headers["Content-Disposition"] = f'attachment; filename="{stem}.zip"'
    response.headers["Cache-Control"] = "no-store"
    return response
