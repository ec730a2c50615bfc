"""Shared fixtures for the instrument engine: the real data files and answer vectors."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import pytest

from pro_service.instruments import Instrument, InstrumentRegistry, load_instruments

REPO_ROOT = Path(__file__).resolve().parents[2]
QUESTIONNAIRES = REPO_ROOT / "questionnaires"
C30_FILE = QUESTIONNAIRES / "qlq-c30" / "3.0.yaml"
PAN26_FILE = QUESTIONNAIRES / "qlq-pan26" / "1.0.yaml"

C30_SCALES = (
    "QL2 PF2 RF2 EF CF SF FA NV PA DY SL AP CO DI FI".split()  # noqa: SIM905
)
PAN26_SCALES = tuple(
    f"PAN_{c}"
    for c in "PP BF DS TA ID FL WL WE DM LI BO BI SE FU PL SA SX".split()  # noqa: SIM905
)
ALL_SCORES = (*C30_SCALES, "C30_SUMMARY", *PAN26_SCALES)


def parse_vector(text: str) -> list[int | None]:
    """The reference's notation: ``"2 3 . 4"``, with ``"4 ×28, 7 7"`` for repeats."""
    codes: list[int | None] = []
    tokens = text.replace(",", " ").split()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("×"):
            codes.extend([codes.pop()] * int(token[1:]))
        else:
            codes.append(None if token == "." else int(token))
        i += 1
    return codes


def answers(c30: str, pan26: str) -> dict[int, int | None]:
    """Answers for items 1-30 and 31-56 from the reference's two notations."""
    first = parse_vector(c30)
    second = parse_vector(pan26)
    assert len(first) == 30 and len(second) == 26
    return {number: code for number, code in enumerate(first + second, start=1)}


#: Values as the reference prints them (2 dp) -> the exact score they stand for. Every EORTC
#: score here is a multiple of 100/9 or 100/3 except the summaries, given separately.
EXACT = {
    "0": Fraction(0),
    "100": Fraction(100),
    "50": Fraction(50),
    "16.67": Fraction(50, 3),
    "33.33": Fraction(100, 3),
    "58.33": Fraction(175, 3),
    "66.67": Fraction(200, 3),
    "83.33": Fraction(250, 3),
    "91.67": Fraction(275, 3),
    "93.33": Fraction(280, 3),
    "11.11": Fraction(100, 9),
    "55.56": Fraction(500, 9),
    "88.89": Fraction(800, 9),
    "63.68": Fraction(7450, 117),
    "92.22": Fraction(830, 9),
}


def exact(printed: str) -> Fraction | None:
    return None if printed == "—" else EXACT[printed]


@pytest.fixture(scope="session")
def registry() -> InstrumentRegistry:
    return load_instruments(QUESTIONNAIRES)


@pytest.fixture(scope="session")
def c30(registry: InstrumentRegistry) -> Instrument:
    return registry.get("qlq-c30", "3.0")


@pytest.fixture(scope="session")
def pan26(registry: InstrumentRegistry) -> Instrument:
    return registry.get("qlq-pan26", "1.0")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A private copy of the real questionnaire folder, to break on purpose."""
    target = tmp_path / "questionnaires"
    shutil.copytree(QUESTIONNAIRES, target)
    return target


@pytest.fixture(params=["rows", "blocks"])
def scoring_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with each of score_csv's two ways of scoring: the row path (every file), and
    numpy blocks of one to three lines (what big files get; a block that does not qualify goes
    through the row path), so that both must give the same output, problems and counts."""
    from pro_service.file_scoring import csv_scoring

    if request.param == "rows":
        monkeypatch.setattr(csv_scoring, "FAST_MIN_BYTES", 1 << 62)
    else:
        monkeypatch.setattr(csv_scoring, "FAST_MIN_BYTES", 0)
        monkeypatch.setattr(csv_scoring, "FAST_BYTES", 300)
    return str(request.param)
