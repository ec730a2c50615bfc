"""The wide table as a Stata ``.dta`` file (format 118, Stata 14 and later), written in one pass.

The layout follows StataCorp's "[P] File formats .dta", format 118 (section numbers below are
that document's). A file is a run of tagged sections, all little-endian here (``LSF``)::

    <stata_dta><header>...</header>          5.1   release, byte order, K, N, label, timestamp
    <map>...</map>                           5.2   14 uint64 file positions
    <variable_types>...</variable_types>     5.3   K x uint16
    <varnames>...</varnames>                 5.4   K x 129 bytes, NUL-terminated UTF-8
    <sortlist>...</sortlist>                 5.5   (K + 1) x uint16, all zero: not sorted
    <formats>...</formats>                   5.6   K x 57 bytes
    <value_label_names>...</value_label_names>  5.7   K x 129 bytes
    <variable_labels>...</variable_labels>   5.8   K x 321 bytes
    <characteristics></characteristics>      5.9   none
    <data>...</data>                         5.10  N rows of fixed width
    <strls></strls>                          5.11  none: text is stored as str#, never strL
    <value_labels>...</value_labels>         5.12  one <lbl> table per labelled column
    </stata_dta>

The map (5.2) holds the file position of each section, including the three that follow the
data. Stata recommends seeking back to fill it in; this writer never seeks, so ``out`` may be
a pipe. It can compute every position up front because each row has a fixed width (the string
widths are declared in the :class:`~.columns.Column`) and the number of rows is known, so the
data section is exactly ``row_count x row width`` bytes long.

Types (5.3, 4): ``string`` is ``str#`` with # the column's width in UTF-8 bytes, NUL-padded (3,
5.10); ``integer`` is ``long`` (int32) with value labels named like the variable; ``number`` is
``double``, written bit for bit; ``datetime`` is a ``double`` of milliseconds since 1960-01-01
00:00 UTC with display format ``%tc``, Stata's datetime. Stata keeps milliseconds, so any
microseconds are dropped (rounded down). Missing values are Stata's system missing ``.``: the
codes in section 4, and an empty string for text.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from .columns import Column, StatCell, fit_label, is_missing

MAX_VARIABLES = 32_767  # K is a uint16 in format 118 (5.1.3); more needs format 119
MAX_STRING_WIDTH = 2_045  # the widest str# (5.3)
LABEL_LIMIT = 80  # characters in the dataset label (5.1.5) and in a variable label (5.8)
VALUE_LABEL_LIMIT = 32_000  # UTF-8 bytes in one value label's text (5.12)

TYPE_DOUBLE = 65_526
TYPE_LONG = 65_528
LONG_MIN = -2_147_483_647  # the range of non-missing longs (4)
LONG_MAX = 2_147_483_620
LONG_MISSING = 2_147_483_621  # "." for a long
DOUBLE_MAX = struct.unpack("<d", bytes.fromhex("ffffffffffffdf7f"))[0]  # largest non-missing
DOUBLE_MISSING = 2.0**1023  # "." for a double: the bit pattern 0x7fe0000000000000

FORMAT_INTEGER = "%8.0g"
FORMAT_NUMBER = "%10.0g"
FORMAT_DATETIME = "%tc"

STATA_EPOCH = datetime(1960, 1, 1, tzinfo=UTC)  # %tc counts milliseconds from here
_MILLISECOND = timedelta(milliseconds=1)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
# Names Stata keeps for itself ([U] 11.3 Naming conventions), besides str1 ... str2045.
_RESERVED = frozenset(
    {"_all", "_b", "byte", "_coef", "_cons", "double", "float", "if", "in", "int", "long"}
    | {"_n", "_N", "_pi", "_pred", "_rc", "_skip", "strL", "using", "with"}
)
_MAP_LENGTH = len(b"<map>") + 14 * 8 + len(b"</map>")
_FLUSH_BYTES = 1 << 16  # rows are handed to ``out`` in chunks of about this size

Encoder = Callable[[StatCell, int], object]


def write_dta(
    out: BinaryIO,
    columns: Sequence[Column],
    rows: Iterable[Sequence[StatCell]],
    row_count: int,
    *,
    dataset_label: str,
    timestamp: datetime,
) -> int:
    """Write ``row_count`` rows of ``columns`` to ``out`` as a format-118 ``.dta`` file.

    ``out`` is written front to back only (never seeked or told). ``dataset_label`` is cut to 80
    characters, variable labels likewise; ``timestamp`` is the "saved on" time shown by Stata,
    written as given (to the minute). Returns the number of rows written.

    Raises ValueError, naming the column (and row, counted from 1), for a column Stata cannot
    hold and for a cell that does not fit its column; a bad row is found before it is written.
    More or fewer rows than ``row_count`` are an error too; a file cut short that way is not a
    valid ``.dta`` file.
    """
    _check_columns(columns)
    if row_count < 0:
        raise ValueError(f"row_count must not be negative, not {row_count}")
    row_struct = struct.Struct("<" + "".join(_struct_code(column) for column in columns))
    encoders = [_encoder(column) for column in columns]
    value_labels = _value_labels_section(columns)
    _write_all(
        out,
        _front(
            columns,
            row_count,
            row_struct.size,
            value_labels,
            dataset_label=dataset_label,
            timestamp=timestamp,
        ),
    )

    written = 0
    pending: list[bytes] = []
    pending_bytes = 0
    width = len(columns)
    for row in rows:
        if written == row_count:
            raise ValueError(f"more rows than the {row_count} declared")
        number = written + 1
        if len(row) != width:
            raise ValueError(f"row {number} has {len(row)} cells, not {width}")
        packed = row_struct.pack(
            *[encode(cell, number) for encode, cell in zip(encoders, row, strict=True)]
        )
        pending.append(packed)
        pending_bytes += len(packed)
        written = number
        if pending_bytes >= _FLUSH_BYTES:
            _write_all(out, b"".join(pending))
            pending.clear()
            pending_bytes = 0
    if written != row_count:
        raise ValueError(f"{written} rows instead of the {row_count} declared")
    pending.append(b"</data><strls></strls>" + value_labels + b"</stata_dta>")
    _write_all(out, b"".join(pending))
    return written


def _check_columns(columns: Sequence[Column]) -> None:
    if len(columns) > MAX_VARIABLES:
        raise ValueError(f"{len(columns)} columns; a Stata file holds at most {MAX_VARIABLES}")
    seen: set[str] = set()
    for column in columns:
        name = column.name
        if not _NAME.fullmatch(name) or name in _RESERVED or re.fullmatch(r"str\d+", name):
            raise ValueError(
                f"column {name!r}: not a Stata variable name (at most 32 letters, digits or _, "
                "not starting with a digit, not a reserved word)"
            )
        if name in seen:
            raise ValueError(f"column {name}: the name appears twice")
        seen.add(name)
        if column.kind == "string" and column.width > MAX_STRING_WIDTH:
            raise ValueError(
                f"column {name}: width {column.width} bytes; "
                f"a Stata str# holds at most {MAX_STRING_WIDTH}"
            )
        for code in column.value_labels:
            if not LONG_MIN <= code <= LONG_MAX:
                raise ValueError(f"column {name}: value label code {code} does not fit a long")


def _struct_code(column: Column) -> str:
    if column.kind == "string":
        return f"{column.width}s"  # struct pads with NUL bytes, as 5.10 asks
    return "i" if column.kind == "integer" else "d"


def _front(
    columns: Sequence[Column],
    row_count: int,
    row_width: int,
    value_labels: bytes,
    *,
    dataset_label: str,
    timestamp: datetime,
) -> bytes:
    """Everything before the first row: header, map and the per-variable sections (5.1-5.9)."""
    label = fit_label(dataset_label, LABEL_LIMIT).encode("utf-8")
    stamp = (
        f"{timestamp.day:02d} {_MONTHS[timestamp.month - 1]} {timestamp.year:04d} "
        f"{timestamp.hour:02d}:{timestamp.minute:02d}"
    ).encode("ascii")
    header = b"".join(
        [
            b"<stata_dta><header><release>118</release><byteorder>LSF</byteorder>",
            b"<K>" + struct.pack("<H", len(columns)) + b"</K>",
            b"<N>" + struct.pack("<Q", row_count) + b"</N>",
            b"<label>" + struct.pack("<H", len(label)) + label + b"</label>",
            b"<timestamp>" + struct.pack("<B", len(stamp)) + stamp + b"</timestamp>",
            b"</header>",
        ]
    )
    sections = [
        _tagged("variable_types", [struct.pack("<H", _type_code(c)) for c in columns]),
        _tagged("varnames", [_fixed(c.name, 129) for c in columns]),
        _tagged("sortlist", [bytes(2 * (len(columns) + 1))]),
        _tagged("formats", [_fixed(_display_format(c), 57) for c in columns]),
        _tagged(
            "value_label_names",
            [_fixed(c.name if c.value_labels else "", 129) for c in columns],
        ),
        _tagged("variable_labels", [_fixed(fit_label(c.label, LABEL_LIMIT), 321) for c in columns]),
        b"<characteristics></characteristics>",
    ]
    # The map's 14 positions (5.2): <stata_dta>, <map>, the seven sections above, <data>,
    # <strls>, <value_labels>, </stata_dta> and the end of the file.
    positions = [0, len(header)]
    position = len(header) + _MAP_LENGTH
    for section in sections:
        positions.append(position)
        position += len(section)
    for length in (
        len(b"<data>") + row_count * row_width + len(b"</data>"),
        len(b"<strls></strls>"),
        len(value_labels),
        len(b"</stata_dta>"),
    ):
        positions.append(position)
        position += length
    positions.append(position)
    file_map = b"<map>" + struct.pack("<14Q", *positions) + b"</map>"
    return header + file_map + b"".join(sections) + b"<data>"


def _tagged(tag: str, parts: list[bytes]) -> bytes:
    return f"<{tag}>".encode("ascii") + b"".join(parts) + f"</{tag}>".encode("ascii")


def _fixed(text: str, size: int) -> bytes:
    """``text`` in a field of ``size`` bytes: UTF-8, NUL-terminated and NUL-padded (3).

    Every caller's text fits: names are checked, labels cut to a quarter of ``size`` characters.
    """
    return text.encode("utf-8").ljust(size, b"\0")


def _type_code(column: Column) -> int:
    if column.kind == "string":
        return column.width
    return TYPE_LONG if column.kind == "integer" else TYPE_DOUBLE


def _display_format(column: Column) -> str:
    if column.kind == "string":
        return f"%-{column.width}s"
    if column.kind == "integer":
        return FORMAT_INTEGER
    return FORMAT_NUMBER if column.kind == "number" else FORMAT_DATETIME


def _value_labels_section(columns: Sequence[Column]) -> bytes:
    """``<value_labels>`` with one table per labelled column, named like the column (5.12).

    A table is ``<lbl>``, its length (int32), the name in 129 bytes, 3 bytes of padding, then
    n, txtlen, off[n], val[n] (int32 each, val ascending) and the NUL-terminated texts.
    """
    tables = []
    for column in columns:
        if not column.value_labels:
            continue
        codes = sorted(column.value_labels)
        texts = [
            fit_label(column.value_labels[code], VALUE_LABEL_LIMIT, encoded=True).encode("utf-8")
            + b"\0"
            for code in codes
        ]
        offsets = [0]
        for text in texts[:-1]:
            offsets.append(offsets[-1] + len(text))
        n = len(codes)
        txt = b"".join(texts)
        table = struct.pack(f"<2i{n}i{n}i", n, len(txt), *offsets, *codes) + txt
        tables.append(
            b"<lbl>"
            + struct.pack("<i", len(table))
            + _fixed(column.name, 129)
            + bytes(3)
            + table
            + b"</lbl>"
        )
    return b"<value_labels>" + b"".join(tables) + b"</value_labels>"


def _encoder(column: Column) -> Encoder:
    """A function turning one cell of ``column`` into the value ``struct`` packs for it."""
    name = column.name

    def bad(cell: StatCell, row: int, what: str) -> ValueError:
        return ValueError(f"row {row}, column {name}: {what}, not {cell!r}")

    if column.kind == "string":
        width = column.width

        def encode_string(cell: StatCell, row: int) -> object:
            if is_missing(cell):
                return b""
            if not isinstance(cell, str):
                raise bad(cell, row, "expected text")
            encoded = cell.encode("utf-8")
            if len(encoded) > width:
                raise ValueError(
                    f"row {row}, column {name}: {len(encoded)} bytes of UTF-8, "
                    f"wider than the declared width {width}"
                )
            return encoded

        return encode_string

    if column.kind == "integer":

        def encode_integer(cell: StatCell, row: int) -> object:
            if is_missing(cell):
                return LONG_MISSING
            if not isinstance(cell, int) or isinstance(cell, bool):
                raise bad(cell, row, "expected an integer")
            if not LONG_MIN <= cell <= LONG_MAX:
                raise bad(cell, row, f"a Stata long holds {LONG_MIN}..{LONG_MAX}")
            return cell

        return encode_integer

    if column.kind == "number":

        def encode_number(cell: StatCell, row: int) -> object:
            if is_missing(cell):
                return DOUBLE_MISSING
            if not isinstance(cell, int | float) or isinstance(cell, bool):
                raise bad(cell, row, "expected a number")
            try:
                value = float(cell)
            except OverflowError:
                raise bad(cell, row, "too large for a double") from None
            if value != cell:
                raise bad(cell, row, "an integer a double cannot hold exactly")
            if value > DOUBLE_MAX or math.isinf(value):  # larger values would read as missing
                raise bad(cell, row, f"a Stata double holds at most {DOUBLE_MAX} and no infinity")
            return value

        return encode_number

    def encode_datetime(cell: StatCell, row: int) -> object:
        if is_missing(cell):
            return DOUBLE_MISSING
        if not isinstance(cell, datetime) or cell.tzinfo is None:
            raise bad(cell, row, "expected a timezone-aware datetime")
        return float((cell - STATA_EPOCH) // _MILLISECOND)

    return encode_datetime


def _write_all(out: BinaryIO, data: bytes) -> None:
    """Write all of ``data``; a raw (unbuffered) stream may take only part of it per call."""
    written = out.write(data)
    while written < len(data):
        data = data[written:]
        written = out.write(data)
