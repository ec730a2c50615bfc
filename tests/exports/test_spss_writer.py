"""The streaming SPSS writer: its files read back in pyreadstat (and PSPP, where installed).

Unit level: Columns and rows are made here, no database and no app.
"""

from __future__ import annotations

import io
import math
import os
import random
import shutil
import struct
import subprocess
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest

from pro_service.exports.columns import Column, StatCell
from pro_service.exports.spss import write_sav

CREATED = datetime(2026, 3, 9, 14, 5, 7, tzinfo=UTC)
FOUR_POINT = {1: "Ei lainkaan / Inte alls", 2: "Vähän / Lite", 3: "Melko paljon", 4: "Hyvin paljon"}
LONG_VALUE_LABEL = "Erittäin hyvä – " * 10  # 200 UTF-8 bytes, over the 120 SPSS allows
LONG_LABEL = "Yleinen terveydentila ja elämänlaatu (QLQ-C30 global health status), " * 5

COLUMNS = [
    Column("study_id", "Tutkimusnumero / studie-ID", "string", width=20),
    Column("site", "Sairaala / sjukhus", "string", width=8),
    Column("days_from_surgery", "Päiviä leikkauksesta", "integer"),
    Column("completed_at", "Täytetty / ifylld (UTC)", "datetime"),
    Column("qlq_pan26_version", "QLQ-PAN26 version", "string", width=3),
    Column("qlq_pan26_language", "Kieli / språk", "string", width=2),  # short name collides
    Column("ql2", LONG_LABEL, "number"),
    Column(
        "q31", "Onko teillä ollut kipua? / Har ni haft ont?", "integer", value_labels=FOUR_POINT
    ),
    Column("q32", "Väsyttikö? / Var ni trött?", "integer", value_labels=FOUR_POINT),
    Column(
        "q29", "Arvio terveydestä 1–7", "integer", value_labels={1: "Huono", 7: LONG_VALUE_LABEL}
    ),
]

ROWS: list[tuple[StatCell, ...]] = [
    # "UPP-001 Åbo sjukhus" and "HEL-TYKS" fill their widths exactly (Å is two bytes).
    ("UPP-001 Åbo sjukhus", "UPP", 3, datetime(2026, 1, 2, 8, 30, 0, tzinfo=UTC), "3.0", "sv",
     0.1 + 0.2, 1, 4, 7),
    ("HEL-001", "HEL-TYKS", -5, datetime(2026, 1, 3, 23, 59, 59, tzinfo=UTC), "2.0", "fi",
     100 / 3, 2, 3, 1),
    ("HEL-002", "", 1000, None, None, "fi", 83.33333333333334, None, 2, None),
    (None, None, None, datetime(2025, 12, 31, 0, 0, tzinfo=UTC), "3.0", None, None, 4, None, 7),
    ("ööööö", "åäö-A", -200, datetime(2026, 2, 28, 12, 0, 1, tzinfo=UTC), "3.0", "sv",
     float("nan"), 3, 1, 1),
]  # fmt: skip


def _write(path: Path, columns: Sequence[Column], rows: Sequence[Sequence[StatCell]]) -> int:
    with path.open("wb") as out:
        return write_sav(
            out, columns, rows, len(rows), file_label="PRO Service export (wide)", created=CREATED
        )


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def _assert_read_back(frame: pd.DataFrame, columns: Sequence[Column], rows: Sequence) -> None:
    """Every cell as pyreadstat returns it: text, the exact double, or a naive UTC datetime."""
    assert list(frame.columns) == [c.name for c in columns]
    assert len(frame) == len(rows)
    for index, column in enumerate(columns):
        got = list(frame[column.name])
        for number, (row, value) in enumerate(zip(rows, got, strict=True)):
            expected = row[index]
            where = f"{column.name}, row {number + 1}"
            missing = expected is None or (isinstance(expected, float) and math.isnan(expected))
            if column.kind == "string":
                assert value == ("" if missing else expected), where
            elif column.kind == "datetime":
                if missing:
                    assert pd.isna(value), where
                else:
                    assert value == expected.astimezone(UTC).replace(tzinfo=None), where
            elif missing:
                assert math.isnan(value), where
            else:
                assert _bits(value) == _bits(float(expected)), where


def _variable_records(data: bytes) -> list[tuple[int, bytes]]:
    """(width, short name) of each type 2 record after the 176-byte header, as SPSS sees them."""
    records = []
    offset = 176
    while struct.unpack_from("<i", data, offset)[0] == 2:
        width, has_label, n_missing = struct.unpack_from("<3i", data, offset + 4)
        records.append((width, data[offset + 24 : offset + 32]))
        offset += 32
        if has_label:
            (length,) = struct.unpack_from("<i", data, offset)
            offset += 4 + (length + 3) // 4 * 4
        offset += 8 * abs(n_missing)
    return records


def test_every_kind_of_column_reads_back_with_its_labels_and_measure(tmp_path):
    path = tmp_path / "wide.sav"
    assert _write(path, COLUMNS, ROWS) == len(ROWS)

    frame, meta = pyreadstat.read_sav(str(path))
    _assert_read_back(frame, COLUMNS, ROWS)
    assert frame["completed_at"].dtype.kind == "M"  # a datetime, not seconds since 1582
    assert meta.number_rows == len(ROWS)
    assert meta.file_label == "PRO Service export (wide)"
    assert meta.file_encoding == "UTF-8"

    labels = meta.column_names_to_labels
    assert labels["study_id"] == "Tutkimusnumero / studie-ID"
    assert labels["q31"] == "Onko teillä ollut kipua? / Har ni haft ont?"
    assert len(LONG_LABEL.encode()) > 255
    assert labels["ql2"].endswith("…") and len(labels["ql2"].encode()) <= 255
    assert LONG_LABEL.startswith(labels["ql2"].removesuffix("…"))

    four_point = {float(k): v for k, v in FOUR_POINT.items()}
    assert meta.variable_value_labels["q31"] == four_point
    assert meta.variable_value_labels["q32"] == four_point
    q29 = meta.variable_value_labels["q29"]
    assert q29[1.0] == "Huono"
    assert q29[7.0].endswith("…") and len(q29[7.0].encode()) <= 120
    assert set(meta.variable_value_labels) == {"q31", "q32", "q29"}

    assert meta.variable_measure == {
        "study_id": "nominal",
        "site": "nominal",
        "days_from_surgery": "scale",
        "completed_at": "nominal",
        "qlq_pan26_version": "nominal",
        "qlq_pan26_language": "nominal",
        "ql2": "scale",
        "q31": "ordinal",
        "q32": "ordinal",
        "q29": "ordinal",
    }
    assert meta.original_variable_types == {
        "study_id": "A20",
        "site": "A8",
        "days_from_surgery": "F8.0",
        "completed_at": "DATETIME20",
        "qlq_pan26_version": "A3",
        "qlq_pan26_language": "A2",
        "ql2": "F8.2",
        "q31": "F8.0",
        "q32": "F8.0",
        "q29": "F8.0",
    }

    _, meta_only = pyreadstat.read_sav(str(path), metadataonly=True)
    assert meta_only.number_rows == len(ROWS)
    assert meta_only.column_names == [c.name for c in COLUMNS]
    assert meta_only.column_names_to_labels == labels
    assert meta_only.variable_value_labels == meta.variable_value_labels
    assert meta_only.variable_measure == meta.variable_measure
    assert meta_only.file_label == meta.file_label


def test_the_dictionary_has_continuation_records_and_unique_short_names(tmp_path):
    path = tmp_path / "wide.sav"
    _write(path, COLUMNS, ROWS)
    records = _variable_records(path.read_bytes())

    # study_id (A20) takes three 8-byte segments: its record and two continuations (width -1).
    assert [width for width, _ in records[:4]] == [20, -1, -1, 8]
    names = [name.rstrip(b" ") for width, name in records if width != -1]
    assert len(names) == len(COLUMNS)
    assert len(set(names)) == len(names)
    assert all(name == name.upper() and 0 < len(name) <= 8 for name in names)
    # "qlq_pan26_version" and "qlq_pan26_language" begin alike; pyreadstat still tells them apart.
    assert names[4] == b"QLQ_PAN2" and names[5] != names[4]


@pytest.mark.parametrize("count", [0, 1, 7, 8, 9])
def test_row_counts_around_a_compression_block(tmp_path, count):
    """One numeric column: 8 rows fill exactly one block of 8 commands."""
    columns = [Column("days_from_surgery", "Päiviä", "integer")]
    rows = [(value,) for value in [3, -5, 1000, None, -200, 151, -99, 152, -100][:count]]
    path = tmp_path / f"{count}.sav"
    assert _write(path, columns, rows) == count
    frame, meta = pyreadstat.read_sav(str(path))
    assert meta.number_rows == count
    _assert_read_back(frame, columns, rows)


@pytest.mark.parametrize("count", [0, 1, 9, 2000])
def test_the_wide_table_reads_back_at_any_length(tmp_path, count):
    rng = random.Random(count)
    rows: list[tuple[StatCell, ...]] = []
    for number in range(count):
        moment = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**8))
        rows.append(
            (
                f"UPP-{number:04d} åäö" if number % 3 else f"HEL-{number}",
                rng.choice(["UPP", "HEL-TYKS", "", None]),
                rng.choice([None, rng.randint(-400, 400)]),
                rng.choice([None, moment]),
                rng.choice(["1.0", "2.0", None]),
                rng.choice(["fi", "sv", None]),
                rng.choice([None, float("nan"), rng.uniform(0, 100), rng.randint(0, 100) * 1.0]),
                rng.choice([None, 1, 2, 3, 4]),
                rng.choice([None, 1, 2, 3, 4]),
                rng.choice([None, 1, 7]),
            )
        )
    path = tmp_path / "wide.sav"
    assert _write(path, COLUMNS, rows) == count
    frame, meta = pyreadstat.read_sav(str(path))
    assert meta.number_rows == count
    _assert_read_back(frame, COLUMNS, rows)


def test_numbers_keep_every_bit(tmp_path):
    columns = [Column("ql2", "Global", "number"), Column("q1", "Item", "integer")]
    values = [0.1 + 0.2, 100 / 3, -0.0, 0.0, 1e300, -1e-300, 5e-324, 151.0, -99.0, 2.5, -100.0]
    rows: list[tuple[StatCell, ...]] = [
        (v, 2**53 if i % 2 else -(2**53)) for i, v in enumerate(values)
    ]
    path = tmp_path / "numbers.sav"
    _write(path, columns, rows)
    frame, _ = pyreadstat.read_sav(str(path))
    _assert_read_back(frame, columns, rows)
    assert math.copysign(1.0, frame["ql2"][2]) == -1.0  # -0.0 is not turned into 0.0


def test_small_integers_are_single_bytecodes_and_the_last_block_is_padded(tmp_path):
    """Bias 100: -99..151 as bytecodes 1..251; others as literals (253); missing is 255."""
    columns = [Column("q1", "Item", "integer")]
    rows: list[tuple[StatCell, ...]] = [(-99,), (151,), (-100,), (152,), (None,), (0,)]
    path = tmp_path / "codes.sav"
    _write(path, columns, rows)
    data = path.read_bytes()
    block = bytes([1, 251, 253, 253, 255, 100, 0, 0]) + struct.pack("<2d", -100.0, 152.0)
    assert data.endswith(struct.pack("<2i", 999, 0) + block)


def test_datetimes_keep_whole_seconds_exactly_and_microseconds_within_one(tmp_path):
    """A double of seconds since 1582 has steps of about 2 µs in this century."""
    rng = random.Random(7)
    helsinki_summer = timezone(timedelta(hours=3))
    moments = [
        datetime(2026, 6, 1, 12, 0, 0, 999_999, tzinfo=UTC),
        datetime(2026, 6, 1, 15, 0, 0, tzinfo=helsinki_summer),  # 12:00 UTC
        datetime(1582, 10, 14, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
    ]
    moments += [
        datetime(2020, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(10**15))
        for _ in range(500)
    ]
    columns = [Column("completed_at", "Completed", "datetime")]
    path = tmp_path / "moments.sav"
    _write(path, columns, [(m,) for m in moments])
    frame, _ = pyreadstat.read_sav(str(path))
    got = list(frame["completed_at"])  # object dtype: 1582 is out of pandas' range
    assert got[1] == datetime(2026, 6, 1, 12, 0, 0)
    assert got[2] == datetime(1582, 10, 14)
    assert got[3] == datetime(1970, 1, 1)
    for written, read in zip(moments, got, strict=True):
        exact = written.astimezone(UTC).replace(tzinfo=None)
        assert abs(read - exact) <= timedelta(microseconds=1), written


class _Pipe(io.RawIOBase):
    """A sink like a pipe: no seek or tell, and each write takes at most 1000 bytes."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def seek(self, *args: object) -> int:
        raise io.UnsupportedOperation("seek on a pipe")

    def tell(self) -> int:
        raise io.UnsupportedOperation("tell on a pipe")

    def write(self, data) -> int:
        taken = bytes(data[:1000])
        self.chunks.append(taken)
        return len(taken)


def test_an_unseekable_sink_gets_the_same_bytes_as_a_file(tmp_path):
    rows = ROWS * 500
    path = tmp_path / "file.sav"
    _write(path, COLUMNS, rows)
    pipe = _Pipe()
    written = write_sav(
        pipe, COLUMNS, rows, len(rows), file_label="PRO Service export (wide)", created=CREATED
    )
    assert written == len(rows)
    assert b"".join(pipe.chunks) == path.read_bytes()
    assert len(pipe.chunks) > 10  # partial writes were continued, not lost


def test_file_label_and_creation_time_are_in_the_header(tmp_path):
    path = tmp_path / "label.sav"
    label = "Potilaiden elämänlaatu – patienternas livskvalitet, Åbo och Helsingfors 2026"
    with path.open("wb") as out:
        write_sav(out, COLUMNS[:1], [("x",)], 1, file_label=label, created=CREATED)
    data = path.read_bytes()
    assert data[:4] == b"$FL2"
    assert data[4:64].rstrip() == b"@(#) SPSS DATA FILE PRO Service"
    # layout code, segments per case (A20: 3), compression, weight index, cases; the bias
    assert struct.unpack_from("<5id", data, 64) == (2, 3, 1, 0, 1, 100.0)
    assert data[92:109] == b"09 Mar 2614:05:07"
    _, meta = pyreadstat.read_sav(str(path), metadataonly=True)
    assert meta.creation_time == datetime(2026, 3, 9, 14, 5, 7)
    assert meta.file_label.endswith("…") and len(meta.file_label.encode()) <= 64
    assert label.startswith(meta.file_label.removesuffix("…"))


@pytest.mark.parametrize(
    ("columns", "rows", "row_count", "message"),
    [
        (COLUMNS[1:2], [("HEL-TYKSX",)], 1, r"row 1, column site: 9 bytes .* width 8"),
        (COLUMNS[1:2], [("ÅÅÅÅÅ",)], 1, r"row 1, column site: 10 bytes in UTF-8"),
        (COLUMNS[1:2], [(12,)], 1, r"row 1, column site: 12 is not text"),
        (COLUMNS[2:3], [(1,), (3.5,)], 2, r"row 2, column days_from_surgery: 3.5 is not an int"),
        (COLUMNS[2:3], [(3.0,)], 1, r"row 1, column days_from_surgery: 3.0 is not an int"),
        (COLUMNS[2:3], [("3",)], 1, r"column days_from_surgery: '3' is not an integer"),
        (COLUMNS[2:3], [(True,)], 1, r"column days_from_surgery: True is not an integer"),
        (COLUMNS[2:3], [(2**53 + 1,)], 1, r"days_from_surgery: 9007199254740993 is too large"),
        (COLUMNS[6:7], [("33.3",)], 1, r"column ql2: '33.3' is not a number"),
        (COLUMNS[6:7], [(math.inf,)], 1, r"column ql2: inf is not a finite number"),
        (COLUMNS[3:4], [(datetime(2026, 1, 1),)], 1, r"completed_at: 2026-01-01T00:00:00 has no"),
        (COLUMNS[3:4], [("2026-01-01",)], 1, r"completed_at: '2026-01-01' is not a datetime"),
        (COLUMNS[:2], [("a", "b"), ("a",)], 2, r"row 2: 1 cells for 2 columns"),
        (COLUMNS[:2], [("a", "b", "c")], 1, r"row 1: 3 cells for 2 columns"),
        (COLUMNS[:1], [("a",)], 2, r"1 rows, fewer than the declared row_count 2"),
    ],
)
def test_bad_rows_are_refused_naming_the_problem(columns, rows, row_count, message):
    with pytest.raises(ValueError, match=message):
        write_sav(
            io.BytesIO(),
            columns,
            rows,
            row_count,
            file_label="x",
            created=CREATED,
        )


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ([Column("comment", "Comment", "string", width=256)], r"comment: strings of 256 bytes"),
        ([Column("q1", "a", "integer"), Column("Q1", "b", "integer")], r"Q1: the name is used"),
        ([Column("1st", "First", "integer")], r"'1st': not an SPSS variable name"),
        ([Column("to", "To", "integer")], r"column to: a reserved word"),
        ([Column("x" * 65, "Long", "integer")], r"name longer than 64 bytes"),
        ([], r"at least one column"),
    ],
)
def test_a_bad_dictionary_is_refused_before_anything_is_written(columns, message):
    out = io.BytesIO()
    with pytest.raises(ValueError, match=message):
        write_sav(out, columns, [], 0, file_label="x", created=CREATED)
    assert out.getvalue() == b""


def test_more_rows_than_declared_are_refused_at_the_first_one_too_many():
    def rows() -> Iterator[tuple[StatCell, ...]]:
        yield ("a",)
        yield ("b",)
        raise AssertionError("the writer asked for a row after the one too many")

    with pytest.raises(ValueError, match="row 2 is more than the declared row_count 1"):
        write_sav(io.BytesIO(), COLUMNS[:1], rows(), 1, file_label="x", created=CREATED)


def test_row_count_outside_the_header_field_is_refused():
    with pytest.raises(ValueError, match="row_count"):
        write_sav(io.BytesIO(), COLUMNS, [], -1, file_label="x", created=CREATED)


#: CI installs PSPP (an independent reader of .sav) and makes this test mandatory.
REQUIRE_PSPP = os.environ.get("PRO_TEST_REQUIRE_PSPP") == "1"


def test_pspp_reads_the_file_without_complaint(tmp_path):
    if shutil.which("pspp-convert") is None:
        if REQUIRE_PSPP:
            pytest.fail("PRO_TEST_REQUIRE_PSPP=1 but pspp-convert is missing")
        pytest.skip("PSPP is not installed (apt-get install --no-install-recommends pspp)")
    path = tmp_path / "wide.sav"
    _write(path, COLUMNS, ROWS)
    csv_path = tmp_path / "wide.csv"
    done = subprocess.run(
        ["pspp-convert", str(path), str(csv_path)], capture_output=True, text=True, check=True
    )
    assert done.stderr == ""
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(c.name for c in COLUMNS)
    assert len(lines) == 1 + len(ROWS)
    assert lines[1].startswith("UPP-001 Åbo sjukhus,UPP,3,01/02/2026 08:30:00,3.0,sv,")
