"""The streaming Stata writer: its files read back in pyreadstat and in pandas' own reader.

Two independent readers: pyreadstat (ReadStat, in C) and pandas.read_stata (pure Python, which
also finds the sections through the file's map). Stata keeps datetimes (%tc) to the
millisecond, so datetimes are expected back with their microseconds cut to milliseconds.
"""

from __future__ import annotations

import io
import math
import random
import struct
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest

from pro_service.exports.columns import Column
from pro_service.exports.stata import write_dta

STAMP = datetime(2025, 3, 7, 9, 5, 42, tzinfo=UTC)
ITEM_LABELS = {
    1: "Inte alls / Ei lainkaan",
    2: "Lite / Vähän",
    3: "En hel del",
    4: "Mycket / Hyvin paljon",
}
LONG_LABEL = (
    "Hur har din hälsa varit under den senaste veckan? / Millainen on terveydentilanne ollut? " * 2
)
HELSINKI = timezone(timedelta(hours=2))

COLUMNS = [
    Column("study_id", "Studie-ID (pseudonymt)", "string", width=8),
    Column("site", "Sjukhus / Sairaala", "string", width=6),
    Column("days_from_surgery", "Dagar från operation", "integer"),
    Column("completed_at", "Ifylld (UTC)", "datetime"),
    Column("ql2", LONG_LABEL, "number"),
    Column(
        "q1",
        "Har du svårigheter att gå? / Onko teillä vaikeuksia?",
        "integer",
        value_labels=ITEM_LABELS,
    ),
]
ROWS = [
    ["UPP-001", "Åbo", 14, datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC), 0.1 + 0.2, 1],
    ["HEL-002", "Jyväs", -3, datetime(2024, 5, 6, 9, 8, 9, 999999, tzinfo=HELSINKI), 100 / 3, 4],
    ["UPP-003", "", None, None, None, None],
    [
        "HEL-004",
        None,
        0,
        datetime(1959, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        math.nan,
        math.nan,
    ],
    ["UPP-0005", "åäö", -2_147_483_647, datetime(2030, 1, 1, tzinfo=UTC), -0.0, 2],
    ["X", "ÅÄÖ", 2_147_483_620, datetime(1960, 1, 1, tzinfo=UTC), 5e-324, 3],
    ["Y", "öö", 7, datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC), -1.7976931348623157e308, 1],
    ["Z", "ä", 8, datetime(2024, 1, 1, tzinfo=UTC), math.nextafter(2.0**1023, 0), 1],
]
# The largest double Stata does not read as missing, just under 2**1023.
assert struct.pack("<d", ROWS[-1][4]) == bytes.fromhex("ffffffffffffdf7f")


def expected(column: Column, cell: object) -> object:
    """What a reader gives back for ``cell``: "" or None when missing, datetimes naive UTC in ms."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return "" if column.kind == "string" else None
    if isinstance(cell, datetime):
        utc = cell.astimezone(UTC).replace(tzinfo=None)
        return utc.replace(microsecond=utc.microsecond // 1000 * 1000)
    return cell


def read_back(frame: pd.DataFrame) -> list[list[object]]:
    """The frame's cells as plain Python values, missing as None (strings stay "")."""
    rows = []
    for record in frame.itertuples(index=False):
        row: list[object] = []
        for value in record:
            if isinstance(value, pd.Timestamp):
                row.append(value.to_pydatetime())
            elif value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
                row.append(None)
            elif hasattr(value, "item"):  # a NumPy scalar
                row.append(value.item())
            else:
                row.append(value)
        rows.append(row)
    return rows


def same(got: list[list[object]], columns: list[Column], rows: list[list[object]]) -> None:
    """Cell by cell; numbers compared as their 8 bytes, so 0.1 + 0.2 and -0.0 must survive."""
    assert len(got) == len(rows)
    for number, (back, row) in enumerate(zip(got, rows, strict=True), start=1):
        want = [expected(column, cell) for column, cell in zip(columns, row, strict=True)]
        for column, value, wanted in zip(columns, back, want, strict=True):
            where = f"row {number}, {column.name}"
            if column.kind == "number" and wanted is not None:
                assert isinstance(value, float), where
                assert struct.pack("<d", value) == struct.pack("<d", wanted), where
            else:
                assert value == wanted, where


def write(path: Path, columns=COLUMNS, rows=ROWS, row_count=None, **kwargs) -> int:
    with path.open("wb") as out:
        return write_dta(
            out,
            columns,
            rows,
            len(rows) if row_count is None else row_count,
            dataset_label=kwargs.get("dataset_label", "PRO Service export (wide)"),
            timestamp=kwargs.get("timestamp", STAMP),
        )


@pytest.fixture
def dta(tmp_path: Path) -> Path:
    path = tmp_path / "wide.dta"
    assert write(path) == len(ROWS)
    return path


def test_pyreadstat_reads_values_types_labels_and_value_labels(dta: Path):
    frame, meta = pyreadstat.read_dta(str(dta))
    assert list(frame.columns) == [c.name for c in COLUMNS]
    same(read_back(frame), COLUMNS, ROWS)
    assert meta.file_label == "PRO Service export (wide)"
    assert meta.creation_time == datetime(2025, 3, 7, 9, 5)
    cut = LONG_LABEL[:79] + "…"
    assert meta.column_names_to_labels == {
        c.name: (cut if c.label == LONG_LABEL else c.label) for c in COLUMNS
    }
    assert meta.variable_value_labels == {"q1": ITEM_LABELS}
    assert meta.readstat_variable_types == {
        "study_id": "string",
        "site": "string",
        "days_from_surgery": "int32",
        "completed_at": "double",
        "ql2": "double",
        "q1": "int32",
    }
    assert meta.original_variable_types["completed_at"] == "%tc"
    assert meta.original_variable_types["site"] == "%-6s"
    assert str(frame["completed_at"].dtype).startswith("datetime64")


def test_pandas_reads_the_same_values_and_labels(dta: Path):
    with pd.io.stata.StataReader(dta, convert_categoricals=False) as reader:
        frame = reader.read()
        variable_labels = reader.variable_labels()
        value_labels = reader.value_labels()
        assert reader.data_label == "PRO Service export (wide)"
        assert reader.time_stamp == "07 Mar 2025 09:05"
    assert list(frame.columns) == [c.name for c in COLUMNS]
    same(read_back(frame), COLUMNS, ROWS)
    assert variable_labels["ql2"] == LONG_LABEL[:79] + "…"
    assert len(variable_labels["ql2"]) == 80
    assert variable_labels["site"] == "Sjukhus / Sairaala"
    assert value_labels == {"q1": ITEM_LABELS}


def test_pandas_turns_labelled_codes_into_their_labels(dta: Path):
    frame = pd.read_stata(dta)  # convert_categoricals=True, the default
    assert list(frame["q1"].astype(object).where(frame["q1"].notna(), None)) == [
        ITEM_LABELS[1],
        ITEM_LABELS[4],
        None,
        None,
        ITEM_LABELS[2],
        ITEM_LABELS[3],
        ITEM_LABELS[1],
        ITEM_LABELS[1],
    ]


def test_the_map_points_at_every_section_and_the_end_of_the_file(dta: Path):
    data = dta.read_bytes()
    start = data.index(b"<map>") + len(b"<map>")
    positions = struct.unpack("<14Q", data[start : start + 14 * 8])
    tags = [b"<stata_dta>", b"<map>", b"<variable_types>", b"<varnames>", b"<sortlist>"]
    tags += [b"<formats>", b"<value_label_names>", b"<variable_labels>", b"<characteristics>"]
    tags += [b"<data>", b"<strls>", b"<value_labels>", b"</stata_dta>"]
    for position, tag in zip(positions, tags, strict=False):
        assert data[position : position + len(tag)] == tag
    assert positions[13] == len(data)


def test_dataset_label_is_cut_to_80_characters(tmp_path: Path):
    path = tmp_path / "label.dta"
    write(path, dataset_label="Exportfil för statistik / Tilastotiedosto " * 3)
    _, meta = pyreadstat.read_dta(str(path))
    assert len(meta.file_label) == 80 and meta.file_label.endswith("…")
    with pd.io.stata.StataReader(path) as reader:
        assert reader.data_label == meta.file_label


def test_no_rows_still_carries_columns_and_labels(tmp_path: Path):
    path = tmp_path / "empty.dta"
    assert write(path, rows=[]) == 0
    frame, meta = pyreadstat.read_dta(str(path))
    assert list(frame.columns) == [c.name for c in COLUMNS] and len(frame) == 0
    assert meta.variable_value_labels == {"q1": ITEM_LABELS}
    assert meta.column_names_to_labels["site"] == "Sjukhus / Sairaala"
    with pd.io.stata.StataReader(path, convert_categoricals=False) as reader:
        assert len(reader.read()) == 0
        assert reader.value_labels() == {"q1": ITEM_LABELS}


MANY_COLUMNS = [*COLUMNS[:1], Column("site", "Ort / Paikkakunta", "string", width=12), *COLUMNS[2:]]


def many_rows(count: int) -> list[list[object]]:
    rng = random.Random(20250307)
    words = ["", "a", "Åbo", "Jyväskylä", "Uppsala", "Mäntsälä"]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows: list[list[object]] = []
    for index in range(count):
        missing = index % 7 == 0
        rows.append(
            [
                f"P{index:05d}",
                rng.choice(words),
                None if missing else rng.randint(-400, 400),
                None if missing else start + timedelta(microseconds=rng.randrange(10**14)),
                None if missing else rng.uniform(-100, 100) / 3,
                None if index % 5 == 0 else rng.randint(1, 4),
            ]
        )
    return rows


def test_two_thousand_rows_read_back_exactly(tmp_path: Path):
    rows = many_rows(2_000)
    path = tmp_path / "many.dta"
    assert write(path, columns=MANY_COLUMNS, rows=iter(rows), row_count=len(rows)) == 2_000
    frame, _ = pyreadstat.read_dta(str(path))
    same(read_back(frame), MANY_COLUMNS, rows)
    with pd.io.stata.StataReader(path, convert_categoricals=False) as reader:
        same(read_back(reader.read()), MANY_COLUMNS, rows)


class Pipe(io.RawIOBase):
    """A sink like a pipe: no seek or tell, and each write may take only part of the bytes."""

    def __init__(self) -> None:
        self.received = bytearray()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def seek(self, *args):
        raise io.UnsupportedOperation("seek on a pipe")

    def tell(self):
        raise io.UnsupportedOperation("tell on a pipe")

    def write(self, data) -> int:
        taken = bytes(data[:1000])
        self.received += taken
        return len(taken)


def test_an_unseekable_sink_gets_the_same_bytes_as_a_file(tmp_path: Path):
    rows = many_rows(2_000)
    path = tmp_path / "file.dta"
    write(path, columns=MANY_COLUMNS, rows=rows)
    pipe = Pipe()
    label = "PRO Service export (wide)"
    count = write_dta(pipe, MANY_COLUMNS, rows, 2_000, dataset_label=label, timestamp=STAMP)
    assert count == 2_000
    assert bytes(pipe.received) == path.read_bytes()


def test_rows_reach_the_sink_while_they_are_still_coming():
    """Written as they come, not kept: half-way through, most earlier rows are in the sink."""
    rows = many_rows(20_000)
    row_width = 8 + 12 + 4 + 8 + 8 + 4
    pipe = Pipe()
    received_at_half = []

    def produce():
        for index, row in enumerate(rows):
            if index == 10_000:
                received_at_half.append(len(pipe.received))
            yield row

    write_dta(pipe, MANY_COLUMNS, produce(), 20_000, dataset_label="", timestamp=STAMP)
    assert received_at_half[0] > 9_000 * row_width
    assert len(pipe.received) > 20_000 * row_width


def test_value_label_tables_list_their_values_in_ascending_order(tmp_path: Path):
    """Stata looks labels up by binary search, so val[] must ascend (5.12), whatever the order
    of the column's dict; the readers used here would not notice."""
    labels = {4: "Mycket", 1: "Inte alls", -1: "Vet ej / En tiedä", 2: "Lite"}
    path = tmp_path / "order.dta"
    write(path, columns=[Column("q2", "Fråga 2", "integer", value_labels=labels)], rows=[[4]])
    data = path.read_bytes()
    table = data.index(b"<lbl>") + len(b"<lbl>") + 4 + 129 + 3
    n, txtlen = struct.unpack_from("<2i", data, table)
    offsets = struct.unpack_from(f"<{n}i", data, table + 8)
    values = struct.unpack_from(f"<{n}i", data, table + 8 + 4 * n)
    text = data[table + 8 + 8 * n : table + 8 + 8 * n + txtlen]
    assert list(values) == [-1, 1, 2, 4]
    assert [text[o:].split(b"\0")[0].decode() for o in offsets] == [labels[v] for v in values]
    _, meta = pyreadstat.read_dta(str(path))
    assert meta.variable_value_labels == {"q2": labels}


def bad(columns=COLUMNS, rows=ROWS, row_count=None) -> None:
    write_dta(
        io.BytesIO(),
        columns,
        rows,
        len(rows) if row_count is None else row_count,
        dataset_label="",
        timestamp=STAMP,
    )


def with_cell(index: int, value: object) -> list[list[object]]:
    row = list(ROWS[0])
    row[index] = value
    return [ROWS[1], row]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            with_cell(1, "Åbo-Hel"),
            r"row 2, column site: 8 bytes .* wider than the declared width 6",
        ),
        (with_cell(1, 5), r"row 2, column site: expected text"),
        (with_cell(2, 1.5), r"row 2, column days_from_surgery: expected an integer"),
        (with_cell(2, 3.0), r"row 2, column days_from_surgery: expected an integer"),
        (with_cell(2, "3"), r"row 2, column days_from_surgery: expected an integer"),
        (with_cell(2, True), r"row 2, column days_from_surgery: expected an integer"),
        (with_cell(2, 2_147_483_621), r"row 2, column days_from_surgery: .*long holds"),
        (with_cell(2, -2_147_483_648), r"row 2, column days_from_surgery: .*long holds"),
        (with_cell(3, "2024-05-06"), r"row 2, column completed_at: .*timezone-aware datetime"),
        (with_cell(3, datetime(2024, 5, 6)), r"row 2, column completed_at: .*timezone-aware"),
        (with_cell(4, math.inf), r"row 2, column ql2: .*no infinity"),
        (with_cell(4, 2.0**1023), r"row 2, column ql2: a Stata double holds at most"),
        (with_cell(4, "0.5"), r"row 2, column ql2: expected a number"),
        (with_cell(4, 2**53 + 1), r"row 2, column ql2: .*cannot hold exactly"),
        ([ROWS[0], ROWS[1][:-1]], r"row 2 has 5 cells, not 6"),
        ([ROWS[0], [*ROWS[1], 1]], r"row 2 has 7 cells, not 6"),
    ],
)
def test_a_bad_cell_or_row_names_its_row_and_column(rows, message):
    with pytest.raises(ValueError, match=message):
        bad(rows=rows)


def test_more_rows_than_declared_fails_at_the_first_extra_row():
    seen = []

    def rows():
        for row in ROWS:
            seen.append(row)
            yield row

    with pytest.raises(ValueError, match=r"more rows than the 3 declared"):
        bad(rows=rows(), row_count=3)
    assert len(seen) == 4


def test_fewer_rows_than_declared_is_an_error():
    with pytest.raises(ValueError, match=r"8 rows instead of the 9 declared"):
        bad(row_count=9)
    with pytest.raises(ValueError, match=r"row_count must not be negative, not -1"):
        bad(rows=[], row_count=-1)


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (Column("1st", "x", "integer"), r"column '1st': not a Stata variable name"),
        (Column("q-1", "x", "integer"), r"column 'q-1': not a Stata variable name"),
        (Column("a" * 33, "x", "integer"), r"not a Stata variable name"),
        (Column("hälsa", "x", "integer"), r"column 'hälsa': not a Stata variable name"),
        (Column("long", "x", "integer"), r"column 'long': not a Stata variable name"),
        (Column("str12", "x", "string"), r"column 'str12': not a Stata variable name"),
        (Column("site", "again", "string"), r"column site: the name appears twice"),
        (Column("note", "x", "string", width=2046), r"column note: width 2046 bytes"),
        (
            Column("q9", "x", "integer", value_labels={2_147_483_621: "."}),
            r"column q9: value label code 2147483621",
        ),
    ],
)
def test_a_column_stata_cannot_hold_is_named(column, message):
    with pytest.raises(ValueError, match=message):
        bad(columns=[*COLUMNS, column], rows=[])


def test_the_widest_string_reads_back(tmp_path: Path):
    path = tmp_path / "note.dta"
    columns = [Column("note", "Anteckning", "string", width=2045)]
    text = "ä" * 1022 + "x"  # 2,045 bytes: the whole field, no NUL after it
    write(path, columns=columns, rows=[[text], ["å"]])
    frame, _ = pyreadstat.read_dta(str(path))
    assert list(frame["note"]) == [text, "å"]
    assert pd.read_stata(path)["note"].tolist() == [text, "å"]


def test_32767_columns_are_the_most(tmp_path: Path):
    path = tmp_path / "many_columns.dta"
    columns = [Column(f"v{i}", f"Variabel {i}", "integer") for i in range(32_767)]
    write(path, columns=columns, rows=[list(range(32_767))])
    # pandas, which reads only the asked-for column; pyreadstat takes seconds over 32,767.
    with pd.io.stata.StataReader(path) as reader:
        assert reader.variable_labels()["v32766"] == "Variabel 32766"
        assert reader.read(columns=["v0", "v32766"]).values.tolist() == [[0, 32_766]]
    with pytest.raises(ValueError, match=r"32768 columns; a Stata file holds at most 32767"):
        bad(columns=[*columns, Column("one_more", "", "integer")], rows=[])


def test_missing_numbers_are_stata_system_missing_in_the_file(tmp_path: Path):
    """Stata's "." codes (section 4 of the format), not a NaN that readers happen to accept."""
    path = tmp_path / "missing.dta"
    columns = [c for c in COLUMNS if c.kind != "string"]
    write(path, columns=columns, rows=[[None, math.nan, None, None]])
    data = path.read_bytes()
    row = data[data.index(b"<data>") + len(b"<data>") : data.index(b"</data>")]
    dot_long = struct.pack("<i", 2_147_483_621)
    dot_double = bytes.fromhex("000000000000e07f")
    assert row == dot_long + dot_double + dot_double + dot_long
