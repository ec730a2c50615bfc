"""How a CSV file from a spreadsheet is laid out: its column separator and byte-order mark.

One helper for every command that reads a user's CSV file (``score``, ``import-patients``), so
they accept the same files. Spreadsheets with a Swedish or Finnish locale save "CSV" with
semicolons between columns, and Excel's "CSV UTF-8" starts with a UTF-8 byte-order mark.
"""

from __future__ import annotations

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
