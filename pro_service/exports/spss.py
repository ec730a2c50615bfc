"""An SPSS system file (``.sav``) written front to back, one row at a time.

pyreadstat can only write a whole data frame, so the wide table is written here in one sequential
pass: ``out`` is only ever appended to (it may be a pipe) and memory does not grow with the
number of rows. The layout follows the PSPP manual, appendix "System File Format", whose section
names are quoted below. All integers are little-endian int32, all numbers IEEE doubles.

1. "File Header Record": ``$FL2``, product name, layout code 2, the case size in 8-byte segments,
   compression 1 (bytecode), no weight variable, the number of cases, the bias 100, creation
   date and time and the file label (176 bytes).
2. "Variable Record" (type 2): one per variable, named by a unique upper-case short name of at
   most 8 bytes, with its print and write format (type << 16 | width << 8 | decimals) and its
   label; a string wider than 8 bytes is followed by one continuation record (type 2, width -1)
   per further 8-byte segment.
3. "Value Labels Records" (type 3, then type 4 naming the variables by 1-based segment index):
   one pair per distinct set of value labels of the integer columns.
4. Extension records (type 7): "Machine Integer Info Record" (subtype 3, character code 65001 =
   UTF-8), "Machine Floating-Point Info Record" (subtype 4), "Variable Display Parameter Record"
   (subtype 11: measure, display width, alignment per variable), "Long Variable Names Record"
   (subtype 13: ``SHORT=long_name`` pairs separated by tabs) and "Character Encoding Record"
   (subtype 20: ``UTF-8``).
5. "Dictionary Termination Record" (type 999).
6. "Data Record", bytecode-compressed: a block of 8 command bytes, then the 8-byte literals that
   its 253 commands refer to, and so on. The blocks run on across case boundaries; the last one
   is padded with command 0.

Cells map to variables as follows: a string column is an ``A{width}`` variable, its value
space-padded to whole segments (SPSS has no missing string: missing and "" are both blank, and
readers drop trailing blanks); an integer column is ``F8.0``, a number column ``F8.2`` (display
formats only: the full double is stored); a datetime column is ``DATETIME20``, stored as seconds
since 1582-10-14 00:00:00 (UTC wall time). A missing number is SYSMIS.
"""

from __future__ import annotations

import math
import re
import struct
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

from .columns import Column, StatCell, fit_label, is_missing

PRODUCT = b"@(#) SPSS DATA FILE PRO Service"
MAX_STRING_WIDTH = 255  # wider strings would need "Very Long String Record"s
VARIABLE_LABEL_LIMIT = 255  # UTF-8 bytes
VALUE_LABEL_LIMIT = 120  # UTF-8 bytes, as SPSS itself allows
FILE_LABEL_LIMIT = 64  # bytes in the file header
MAX_NAME_BYTES = 64

BIAS = 100
SYSMIS = -sys.float_info.max
HIGHEST = sys.float_info.max
LOWEST = math.nextafter(-sys.float_info.max, 0.0)

# Format types ("Variable Record"): A, F and DATETIME.
_FMT_A = 1
_FMT_F = 5
_FMT_DATETIME = 22
# "Variable Display Parameter Record"
_NOMINAL, _ORDINAL, _SCALE = 1, 2, 3
_LEFT, _RIGHT = 0, 1
# "Data Record" bytecodes
_PAD, _LITERAL, _BLANKS, _MISSING = 0, 253, 254, 255

_SPSS_EPOCH = datetime(1582, 10, 14, tzinfo=UTC)
_MAX_EXACT_INT = 2**53  # integers beyond this do not survive the trip through a double
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.@#$]*")
_RESERVED = {"ALL", "AND", "BY", "EQ", "GE", "GT", "LE", "LT", "NE", "NOT", "OR", "TO", "WITH"}
_DOUBLE = struct.Struct("<d")
_BUFFER = 1 << 16  # bytes collected before each write to ``out``

#: Appends one cell's bytecodes and literals to the row's.
_Encoder = Callable[[StatCell, bytearray, bytearray], None]


@dataclass(frozen=True)
class _Variable:
    column: Column
    short_name: bytes
    segments: int  # 8-byte segments of a case
    format: int  # print and write format
    measure: int
    display_width: int
    alignment: int


def write_sav(
    out: BinaryIO,
    columns: Sequence[Column],
    rows: Iterable[Sequence[StatCell]],
    row_count: int,
    *,
    file_label: str,
    created: datetime,
) -> int:
    """Write ``rows`` as a compressed SPSS system file to ``out``; return the rows written.

    ``row_count`` goes into the header and must equal the number of rows. ``created`` is
    written as given (date and time of day, no zone). The dictionary is checked before anything
    is written and each row before it is written; a ValueError names the column or row (counted
    from 1). A ValueError about a row leaves ``out`` incomplete: the caller discards it.
    """
    variables = _variables(columns)
    if not 0 <= row_count <= 2**31 - 1:
        raise ValueError(f"row_count must be between 0 and 2**31 - 1, not {row_count}")
    sink = _Sink(out)
    sink.write(_header(variables, row_count, file_label, created))
    sink.write(_dictionary(variables))

    encoders = [_encoder(v) for v in variables]
    compressor = _Compressor(sink)
    written = 0
    for row in rows:
        if written == row_count:
            raise ValueError(f"row {written + 1} is more than the declared row_count {row_count}")
        written += 1
        if len(row) != len(columns):
            raise ValueError(f"row {written}: {len(row)} cells for {len(columns)} columns")
        codes = bytearray()
        literals = bytearray()
        for index, value in enumerate(row):
            try:
                encoders[index](value, codes, literals)
            except ValueError as exc:
                raise ValueError(f"row {written}, column {columns[index].name}: {exc}") from None
        compressor.add(codes, literals)
    if written != row_count:
        raise ValueError(f"{written} rows, fewer than the declared row_count {row_count}")
    compressor.finish()
    sink.flush()
    return written


# --- dictionary ---------------------------------------------------------------------------


def _variables(columns: Sequence[Column]) -> list[_Variable]:
    if not columns:
        raise ValueError("an SPSS file needs at least one column")
    seen: set[str] = set()
    short_names = _short_names([c.name for c in columns])
    variables = []
    for column, short_name in zip(columns, short_names, strict=True):
        name = column.name
        if not _NAME.fullmatch(name) or name.endswith("."):
            raise ValueError(
                f"column {name!r}: not an SPSS variable name (a letter, then letters, digits "
                "or _ . @ # $, not ending in a period)"
            )
        if len(name) > MAX_NAME_BYTES:
            raise ValueError(f"column {name}: name longer than {MAX_NAME_BYTES} bytes")
        if name.upper() in _RESERVED:
            raise ValueError(f"column {name}: a reserved word in SPSS")
        if name.upper() in seen:
            raise ValueError(f"column {name}: the name is used twice (SPSS ignores case)")
        seen.add(name.upper())
        for code in column.value_labels:
            if isinstance(code, bool) or not isinstance(code, int):
                raise ValueError(f"column {name}: value label code {code!r} is not an integer")
        if column.kind == "string":
            if column.width > MAX_STRING_WIDTH:
                raise ValueError(
                    f"column {name}: strings of {column.width} bytes are wider than "
                    f"{MAX_STRING_WIDTH}"
                )
            variables.append(
                _Variable(
                    column,
                    short_name,
                    segments=(column.width + 7) // 8,
                    format=_FMT_A << 16 | column.width << 8,
                    measure=_NOMINAL,
                    display_width=min(column.width, 32),
                    alignment=_LEFT,
                )
            )
        elif column.kind == "datetime":
            variables.append(
                _Variable(
                    column, short_name, 1, _FMT_DATETIME << 16 | 20 << 8, _NOMINAL, 20, _RIGHT
                )
            )
        else:
            decimals = 0 if column.kind == "integer" else 2
            measure = _ORDINAL if column.value_labels else _SCALE
            variables.append(
                _Variable(
                    column, short_name, 1, _FMT_F << 16 | 8 << 8 | decimals, measure, 8, _RIGHT
                )
            )
    return variables


def _short_names(names: list[str]) -> list[bytes]:
    """Unique upper-case names of at most 8 bytes: the start of each name, else with _1, _2, ..."""
    used: set[bytes] = set()
    result = []
    for name in names:
        upper = name.upper().encode("utf-8")
        candidate = upper[:8]
        number = 0
        while candidate in used:
            number += 1
            suffix = f"_{number}".encode()
            candidate = upper[: 8 - len(suffix)] + suffix
        used.add(candidate)
        result.append(candidate)
    return result


def _text(value: str, size: int) -> bytes:
    """``value`` in UTF-8, space-padded to ``size`` bytes (it must fit)."""
    return value.encode("utf-8").ljust(size, b" ")


def _ints(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}i", *values)


def _header(
    variables: list[_Variable], row_count: int, file_label: str, created: datetime
) -> bytes:
    """ "File Header Record" (176 bytes)."""
    label = fit_label(file_label, FILE_LABEL_LIMIT, encoded=True)
    date = f"{created.day:02d} {_MONTHS[created.month - 1]} {created.year % 100:02d}"
    time = f"{created.hour:02d}:{created.minute:02d}:{created.second:02d}"
    header = b"".join(
        [
            b"$FL2",
            PRODUCT.ljust(60, b" "),
            _ints(2, sum(v.segments for v in variables), 1, 0, row_count),
            _DOUBLE.pack(BIAS),
            _text(date, 9),
            _text(time, 8),
            _text(label, FILE_LABEL_LIMIT),
            b"\0\0\0",
        ]
    )
    assert len(header) == 176
    return header


def _dictionary(variables: list[_Variable]) -> bytes:
    """Everything from the first "Variable Record" to the "Dictionary Termination Record"."""
    parts = [_variable_record(v) for v in variables]
    parts.extend(_value_label_records(variables))
    names = "\t".join(f"{v.short_name.decode()}={v.column.name}" for v in variables)
    parts += [
        _info_record(3, 4, _ints(20, 0, 0, -1, 1, 1, 2, 65001)),
        _info_record(4, 8, struct.pack("<3d", SYSMIS, HIGHEST, LOWEST)),
        _info_record(
            11, 4, _ints(*(n for v in variables for n in (v.measure, v.display_width, v.alignment)))
        ),
        _info_record(13, 1, names.encode("utf-8")),
        _info_record(20, 1, b"UTF-8"),
        _ints(999, 0),
    ]
    return b"".join(parts)


def _variable_record(variable: _Variable) -> bytes:
    """A "Variable Record" with its label, then its continuation records."""
    column = variable.column
    label = fit_label(column.label, VARIABLE_LABEL_LIMIT, encoded=True).encode("utf-8")
    width = column.width if column.kind == "string" else 0
    record = _ints(2, width, 1 if label else 0, 0, variable.format, variable.format)
    record += variable.short_name.ljust(8, b" ")
    if label:
        record += _ints(len(label)) + label.ljust((len(label) + 3) // 4 * 4, b" ")
    continuation = _ints(2, -1, 0, 0, 0, 0) + b" " * 8
    return record + continuation * (variable.segments - 1)


def _value_label_records(variables: list[_Variable]) -> list[bytes]:
    """One type 3 record (values and labels) and one type 4 record (variables) per label set."""
    label_sets: dict[tuple[tuple[int, str], ...], list[int]] = {}
    index = 1  # "dictionary index": 1-based, counting continuation records
    for variable in variables:
        labels = variable.column.value_labels
        if labels:
            key = tuple(
                (code, fit_label(text, VALUE_LABEL_LIMIT, encoded=True))
                for code, text in sorted(labels.items())
            )
            label_sets.setdefault(key, []).append(index)
        index += variable.segments
    records = []
    for key, indexes in label_sets.items():
        record = bytearray(_ints(3, len(key)))
        for code, text in key:
            encoded = text.encode("utf-8")
            record += _DOUBLE.pack(float(code)) + bytes([len(encoded)])
            record += encoded.ljust((len(encoded) + 8) // 8 * 8 - 1, b" ")
        records.append(bytes(record) + _ints(4, len(indexes), *indexes))
    return records


def _info_record(subtype: int, size: int, data: bytes) -> bytes:
    """An extension record (type 7): subtype, element size, element count, data."""
    return _ints(7, subtype, size, len(data) // size) + data


# --- data ---------------------------------------------------------------------------------


def _encoder(variable: _Variable) -> _Encoder:
    column = variable.column
    if column.kind == "string":
        return _string_encoder(column.width, variable.segments * 8)
    if column.kind == "integer":
        return _integer_cell
    if column.kind == "number":
        return _number_cell
    return _datetime_cell


def _number(value: float, codes: bytearray, literals: bytearray) -> None:
    """A double as one bytecode, if it is a small integer (never -0.0), else as a literal."""
    negative_zero = value == 0 and math.copysign(1.0, value) < 0  # a bytecode gives back 0.0
    if value.is_integer() and -BIAS < value <= 251 - BIAS and not negative_zero:
        codes.append(int(value) + BIAS)
    else:
        codes.append(_LITERAL)
        literals += _DOUBLE.pack(value)


def _string_encoder(width: int, size: int) -> _Encoder:
    def encode(value: StatCell, codes: bytearray, literals: bytearray) -> None:
        if is_missing(value):
            codes += bytes([_BLANKS]) * (size // 8)
            return
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not text")
        data = value.encode("utf-8")
        if len(data) > width:
            raise ValueError(f"{len(data)} bytes in UTF-8, wider than the declared width {width}")
        data = data.ljust(size, b" ")
        for start in range(0, size, 8):
            segment = data[start : start + 8]
            if segment == b"        ":
                codes.append(_BLANKS)
            else:
                codes.append(_LITERAL)
                literals += segment

    return encode


def _integer_cell(value: StatCell, codes: bytearray, literals: bytearray) -> None:
    if is_missing(value):
        codes.append(_MISSING)
    elif isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > _MAX_EXACT_INT:
            raise ValueError(f"{value} is too large to be stored exactly")
        _number(float(value), codes, literals)
    else:  # 3.0 too, as in the Stata writer: an integer column holds ints
        raise ValueError(f"{value!r} is not an integer")


def _number_cell(value: StatCell, codes: bytearray, literals: bytearray) -> None:
    if is_missing(value):
        codes.append(_MISSING)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if math.isinf(number):
            raise ValueError(f"{value!r} is not a finite number")
        _number(number, codes, literals)
    else:
        raise ValueError(f"{value!r} is not a number")


def _datetime_cell(value: StatCell, codes: bytearray, literals: bytearray) -> None:
    if is_missing(value):
        codes.append(_MISSING)
    elif isinstance(value, datetime) and value.utcoffset() is not None:
        # total_seconds() divides exact integer microseconds: the nearest double.
        _number((value - _SPSS_EPOCH).total_seconds(), codes, literals)
    elif isinstance(value, datetime):
        raise ValueError(f"{value.isoformat()} has no time zone")
    else:
        raise ValueError(f"{value!r} is not a datetime")


class _Compressor:
    """Bytecode compression ("Data Record"): blocks of 8 commands, each followed by its literals."""

    def __init__(self, sink: _Sink) -> None:
        self._sink = sink
        self._commands = bytearray()
        self._literals = bytearray()

    def add(self, codes: bytearray, literals: bytearray) -> None:
        """Append one case: its commands and, in order, the literals of its 253 commands."""
        start = 0
        literal_start = 0
        while start < len(codes):
            take = min(8 - len(self._commands), len(codes) - start)
            chunk = codes[start : start + take]
            literal_end = literal_start + 8 * chunk.count(_LITERAL)
            self._commands += chunk
            self._literals += literals[literal_start:literal_end]
            start += take
            literal_start = literal_end
            if len(self._commands) == 8:
                self._emit()

    def finish(self) -> None:
        """Pad the last block's commands with 0 and write it."""
        if self._commands:
            self._commands += bytes([_PAD]) * (8 - len(self._commands))
            self._emit()

    def _emit(self) -> None:
        self._sink.write(self._commands)
        self._sink.write(self._literals)
        self._commands = bytearray()
        self._literals = bytearray()


class _Sink:
    """Collects output and passes it on to ``out`` in large writes, front to back."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._buffer = bytearray()

    def write(self, data: bytes | bytearray) -> None:
        self._buffer += data
        if len(self._buffer) >= _BUFFER:
            self.flush()

    def flush(self) -> None:
        pending = memoryview(bytes(self._buffer))
        self._buffer.clear()
        while pending:
            # A raw stream may take only part of the data (and says how much).
            written = self._out.write(pending)
            if written is None:
                raise BlockingIOError("the output would block")
            pending = pending[written:]
