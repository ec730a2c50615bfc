"""How a CSV file from a spreadsheet is laid out: its column separator and byte-order mark.

One helper for every command that reads a user's CSV file (``score``, ``import-patients``), so
they accept the same files. Spreadsheets with a Swedish or Finnish locale save "CSV" with
semicolons between columns, and Excel's "CSV UTF-8" starts with a UTF-8 byte-order mark.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

UTF8_BOM = b"\xef\xbb\xbf"
#: The separators recognised, in order of preference when the header has as many of each.
DELIMITERS = ",;\t"
#: The header line is looked for in this many bytes at most.
_HEADER_BYTES = 1 << 20


@dataclass(frozen=True)
class CsvLayout:
    delimiter: str
    has_bom: bool


def delimiter_of(header_line: str) -> str:
    """The separator used most often in the header line (a comma when none is used)."""
    return max(DELIMITERS, key=header_line.count)


def sniff_csv(path: Path | str) -> CsvLayout:
    """The layout of the CSV file at ``path``, from its first line. Raises OSError if unreadable.

    Text that is not UTF-8 is read leniently here; reading the file itself reports it.
    """
    with Path(path).open("rb") as handle:
        first = handle.readline(_HEADER_BYTES)
    has_bom = first.startswith(UTF8_BOM)
    if has_bom:
        first = first[len(UTF8_BOM) :]
    return CsvLayout(delimiter_of(first.decode("utf-8", "replace")), has_bom)


# --- Formula-safe cells (OWASP "CSV injection") ----------------------------------------------

#: The first characters with which a spreadsheet starts a formula (or, tab and carriage return,
#: hides one behind blank space).
FORMULA_STARTS = "=+-@\t\r"
#: A number as written in a CSV cell: ASCII digits only, the same pattern as :data:`NUMBER_SQL`.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
NUMBER_SQL = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def formula_safe(cell: str) -> str:
    """``cell`` with a leading ``'`` when a spreadsheet would read it as a formula.

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets the quote
    (OWASP's advice for CSV files); a number such as ``-1.5`` or ``+3`` stays as it is. Every CSV
    the service writes (exports, downloads, ``score``, the audit trail) passes text through here.
    """
    if cell and cell[0] in FORMULA_STARTS and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def formula_safe_sql(expression: str) -> str:
    """:func:`formula_safe` as a PostgreSQL expression over the SQL text ``expression``, for the
    exports that PostgreSQL writes itself with COPY (byte for byte what Python writes)."""
    starts = "'=', '+', '-', '@', E'\\t', E'\\r'"
    quote = "''''"  # one apostrophe, as an SQL string literal
    return (
        f"CASE WHEN left({expression}, 1) IN ({starts}) AND {expression} !~ '{NUMBER_SQL}'"
        f" THEN {quote} || {expression} ELSE {expression} END"
    )


def looks_like_formula(text: str) -> bool:
    """Text that starts as a formula would (numbers included: a spreadsheet turns ``+46`` into
    46): refused where people name things, such as study IDs."""
    return text[:1] in FORMULA_STARTS if text else False
