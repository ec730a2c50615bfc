"""The reference vectors V1-V7 and invalid inputs X1-X5 of eortc-scoring.md section 4.

Expected values are the exact fractions behind the reference's 2-dp tables (7450/117, 830/9,
280/3, ...); scores must match within 1e-9, and in fact equal the float nearest to the exact
value.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest

from pro_service.instruments import (
    ALGORITHM_VERSION,
    Instrument,
    InvalidAnswerError,
    score_answers,
    score_instrument,
    validate_answers,
)

from .conftest import C30_SCALES, PAN26_SCALES, answers, exact

VECTORS = {
    "V1": ("1 ×30", "1 ×26"),
    "V2": ("4 ×28, 7 7", "4 ×26"),
    "V3": (
        "2 3 2 2 1 3 2 2 3 3 2 2 3 2 1 1 2 3 2 1 2 3 1 2 2 2 3 2 4 5",
        "2 3 2 1 3 2 3 2 1 3 2 2 1 1 1 3 2 2 1 2 4 3 4 3 2 1",
    ),
    "V4": (
        "3 . 2 . 1 . 3 . . . 3 3 2 1 . . 1 4 4 2 . 4 . 2 . 1 . . . 3",
        ". . 3 . 2 4 . 1 2 . 3 1 2 . . 2 . . 3 1 3 2 . 2 . .",
    ),
    "V5": (
        "2 . . . 1 . . 1 1 2 4 . 1 2 2 2 3 . 1 . 1 . . . . 2 2 4 6 .",
        "4 2 . . . . . 3 . 1 4 3 4 2 . . . 4 4 . 2 . 1 1 4 3",
    ),
    "V6": (
        "1 1 1 2 1 1 1 1 2 2 1 1 1 1 1 2 1 . . 1 1 2 1 . 1 1 1 3 7 6",
        "1 ×13, 2 3, 1 ×7, 4 4 1 2",
    ),
    "V7": (
        "4 4 3 . . 2 2 2 2 . 2 . 2 2 2 2 2 3 2 2 . . 3 4 2 2 2 2 2 .",
        ". 2 . 4 3 2 ×21",
    ),
}

# Section 4.1: QL2 PF2 RF2 EF CF SF FA NV PA DY SL AP CO DI FI SUMMARY
C30_EXPECTED = {
    "V1": "0 100 100 100 100 100 0 0 0 0 0 0 0 0 0 100",
    "V2": "100 0 0 0 0 0 100 100 100 100 100 100 100 100 100 0",
    "V3": "58.33 66.67 50 66.67 83.33 50 55.56 16.67 50 33.33 33.33 66.67 0 33.33 33.33 63.68",
    "V4": "33.33 66.67 33.33 33.33 66.67 100 83.33 0 100 — 66.67 33.33 — 0 — —",
    "V5": "83.33 — — — — 66.67 — 33.33 0 0 100 0 33.33 66.67 100 —",
    "V6": "91.67 93.33 100 88.89 100 100 16.67 0 33.33 0 0 0 33.33 0 66.67 92.22",
    "V7": "16.67 11.11 66.67 16.67 66.67 66.67 — 33.33 33.33 33.33 33.33 33.33 33.33 33.33 33.33 —",
}

# Section 4.2 (convention A): PP BF DS TA ID FL WL WE DM LI BO BI SE FU PL SA SX
PAN26_EXPECTED = {
    "V1": "0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 100",
    "V2": "100 100 100 100 100 100 100 100 100 100 100 100 100 100 100 100 0",
    "V3": "33.33 66.67 50 33.33 0 66.67 33.33 33.33 0 0 50 16.67 33.33 100 66.67 83.33 83.33",
    "V4": "50 — 100 0 33.33 — 66.67 0 33.33 — 33.33 66.67 0 66.67 33.33 33.33 —",
    "V5": "— 33.33 — 66.67 — 0 100 66.67 100 33.33 — 100 — 33.33 — 0 16.67",
    "V6": "0 0 0 0 0 0 0 0 0 50 0 0 0 0 0 100 83.33",
    "V7": "83.33 33.33 33.33 33.33 33.33 33.33 33.33 33.33 33.33 33.33 33.33 33.33 33.33 33.33 "
    "33.33 33.33 66.67",
}

# Section 4.2, the other conventions: B: SA, B: SX, C: SA, C: SX
SA_SX_OTHER = {
    "V1": "100 0 0 0",
    "V2": "0 100 100 100",
    "V3": "16.67 16.67 83.33 16.67",
    "V4": "66.67 — 33.33 —",
    "V5": "100 83.33 0 83.33",
    "V6": "0 16.67 100 16.67",
    "V7": "66.67 33.33 33.33 33.33",
}


def _cases(
    table: dict[str, str], codes: tuple[str, ...] | list[str]
) -> list[tuple[str, str, Fraction | None]]:
    cases = []
    for vector, row in table.items():
        printed = row.split()
        assert len(printed) == len(codes), vector
        cases.extend(
            (vector, code, exact(value)) for code, value in zip(codes, printed, strict=True)
        )
    return cases


def assert_score(value: float | None, expected: Fraction | None) -> None:
    if expected is None:
        assert value is None
    else:
        assert value is not None
        assert abs(value - float(expected)) <= 1e-9
        assert value == float(expected)  # the float nearest to the exact score


def _vector(name: str) -> dict[int, int | None]:
    return answers(*VECTORS[name])


@pytest.mark.parametrize(
    ("vector", "code", "expected"), _cases(C30_EXPECTED, [*C30_SCALES, "C30_SUMMARY"])
)
def test_c30_reference_vector(c30: Instrument, vector: str, code: str, expected: Fraction | None):
    scores = score_instrument(c30, _vector(vector))
    assert_score(scores[code].value, expected)


@pytest.mark.parametrize(("vector", "code", "expected"), _cases(PAN26_EXPECTED, PAN26_SCALES))
def test_pan26_reference_vector_convention_a(
    pan26: Instrument, vector: str, code: str, expected: Fraction | None
):
    scores = score_instrument(pan26, _vector(vector))
    assert_score(scores[code].value, expected)


def _with_transforms(pan26: Instrument, sa: str, sx: str) -> Instrument:
    transforms = {"PAN_SA": sa, "PAN_SX": sx}
    scales = tuple(
        dataclasses.replace(scale, transform=transforms[scale.code])
        if scale.code in transforms
        else scale
        for scale in pan26.scales
    )
    return dataclasses.replace(pan26, scales=scales)


@pytest.mark.parametrize("vector", sorted(SA_SX_OTHER))
def test_pan26_sa_sx_convention_b_reverses_both(pan26: Instrument, vector: str):
    b_sa, b_sx, _, _ = (exact(v) for v in SA_SX_OTHER[vector].split())
    scores = score_instrument(_with_transforms(pan26, "functional", "symptom"), _vector(vector))
    assert_score(scores["PAN_SA"].value, b_sa)
    assert_score(scores["PAN_SX"].value, b_sx)


@pytest.mark.parametrize("vector", sorted(SA_SX_OTHER))
def test_pan26_sa_sx_convention_c_scores_both_as_positively_worded(pan26: Instrument, vector: str):
    _, _, c_sa, c_sx = (exact(v) for v in SA_SX_OTHER[vector].split())
    scores = score_instrument(_with_transforms(pan26, "symptom", "symptom"), _vector(vector))
    assert_score(scores["PAN_SA"].value, c_sa)
    assert_score(scores["PAN_SX"].value, c_sx)


def test_pan26_data_file_uses_convention_a_and_flags_sa_sx_unverified(pan26: Instrument):
    sa, sx = pan26.scale("PAN_SA"), pan26.scale("PAN_SX")
    assert (sa.transform, sx.transform) == ("symptom", "functional")
    assert not sa.direction_verified and not sx.direction_verified
    others = [s for s in pan26.scales if s.code not in ("PAN_SA", "PAN_SX")]
    assert all(s.direction_verified and s.transform == "symptom" for s in others)


def test_scores_come_in_file_order_then_summary(c30: Instrument, pan26: Instrument):
    assert list(score_instrument(c30, {})) == [*C30_SCALES, "C30_SUMMARY"]
    assert list(score_instrument(pan26, {})) == list(PAN26_SCALES)


def test_score_answers_merges_both_instruments_and_ignores_foreign_items(
    c30: Instrument, pan26: Instrument
):
    both = _vector("V3")
    merged = score_answers([c30, pan26], both)
    assert list(merged) == [*C30_SCALES, "C30_SUMMARY", *PAN26_SCALES]
    assert merged == {**score_instrument(c30, both), **score_instrument(pan26, both)}
    # PAN26 items (31-56) do not change the C30 scores, and vice versa.
    c30_only = {n: v for n, v in both.items() if n <= 30}
    assert score_instrument(c30, both) == score_instrument(c30, c30_only)


def test_summary_is_reported_with_its_components(c30: Instrument):
    scores = score_instrument(c30, _vector("V4"))
    summary = scores["C30_SUMMARY"]
    assert summary.value is None
    assert (summary.items_in_scale, summary.items_answered) == (13, 11)
    assert summary.missing_reason == "missing components: DY, CO"


def test_summary_leaves_out_ql2_and_fi(c30: Instrument):
    vector = _vector("V3")
    vector.update({28: None, 29: None, 30: None})
    scores = score_instrument(c30, vector)
    assert scores["QL2"].value is None and scores["FI"].value is None
    assert_score(scores["C30_SUMMARY"].value, Fraction(7450, 117))


def test_score_records_answered_items_and_why_a_score_is_missing(c30: Instrument):
    scores = score_instrument(c30, _vector("V5"))
    assert scores["PF2"] == dataclasses.replace(
        scores["PF2"],
        value=None,
        items_in_scale=5,
        items_answered=2,
        missing_reason="2 of 5 items answered; the half rule needs at least 3",
    )
    assert scores["QL2"].items_answered == 1 and scores["QL2"].missing_reason is None
    single = score_instrument(c30, _vector("V4"))["DY"]
    assert single.missing_reason == "item 8 not answered"


def test_algorithm_version_is_the_manual_edition():
    assert ALGORITHM_VERSION == "eortc-manual-3rd-ed/1"


# --------------------------------------------------------------------------------------------
# Invalid inputs X1-X5 and friends: rejected, never clipped or treated as missing.


@pytest.mark.parametrize(
    ("item", "value"),
    [
        pytest.param(3, 5, id="X1-c30-code-5"),
        pytest.param(29, 8, id="X2-item-29-code-8"),
        pytest.param(10, 0, id="X3-code-0"),
        pytest.param(55, 7, id="X4-pan26-item-55-code-7"),
        pytest.param(12, 2.5, id="X5-non-integer-2.5"),
        pytest.param(12, 2.0, id="float-2.0"),
        pytest.param(12, "2", id="string-2"),
        pytest.param(12, True, id="bool-true"),
        pytest.param(30, -1, id="negative"),
        pytest.param(31, 5, id="pan26-code-5"),
    ],
)
def test_invalid_answer_is_rejected_naming_item_and_value(
    c30: Instrument, pan26: Instrument, item: int, value: object
):
    instrument = c30 if item <= 30 else pan26
    vector = _vector("V3")
    vector[item] = value
    with pytest.raises(InvalidAnswerError) as raised:
        score_instrument(instrument, vector)
    assert raised.value.item == item
    assert raised.value.value == value and type(raised.value.value) is type(value)
    message = str(raised.value)
    assert f"item {item}" in message and repr(value) in message
    assert ("allowed 1-7" if item in (29, 30) else "allowed 1-4") in message
    with pytest.raises(InvalidAnswerError):
        validate_answers(instrument, vector)
    with pytest.raises(InvalidAnswerError):
        score_answers([c30, pan26], vector)


def test_invalid_answer_error_is_a_value_error():
    assert issubclass(InvalidAnswerError, ValueError)


def test_seven_point_codes_are_valid_only_for_items_29_and_30(c30: Instrument):
    assert score_instrument(c30, {29: 7, 30: 6})["QL2"].value == pytest.approx(275 / 3)
    with pytest.raises(InvalidAnswerError, match="item 28: 7"):
        score_instrument(c30, {28: 7})


def test_validate_answers_accepts_valid_and_missing_answers(c30: Instrument, pan26: Instrument):
    vector = _vector("V4")
    validate_answers(c30, vector)
    validate_answers(pan26, vector)
    validate_answers(c30, {99: 42})  # not an item of this instrument: ignored


# --------------------------------------------------------------------------------------------
# The half rule at its boundary, for every scale size of both instruments.


def _all_scales(c30: Instrument, pan26: Instrument):
    return [(instrument, scale) for instrument in (c30, pan26) for scale in instrument.scales]


@pytest.mark.parametrize("code", [*C30_SCALES, *PAN26_SCALES])
def test_half_rule_allows_exactly_half_missing(c30: Instrument, pan26: Instrument, code: str):
    instrument = c30 if code in C30_SCALES else pan26
    scale = instrument.scale(code)
    n = len(scale.items)
    needed = (n + 1) // 2  # the fewest answers with answered * 2 >= n
    # Answer the last `needed` items with the highest code: the score is then 0 or 100.
    high = instrument.items[scale.items[0]].max_code
    vector = {item: high for item in scale.items[n - needed :]}
    score = score_instrument(instrument, vector)[code]
    assert score.value is not None
    assert score.items_answered == needed
    expected = 0.0 if scale.transform == "functional" else 100.0
    assert score.value == expected


@pytest.mark.parametrize("code", [*C30_SCALES, *PAN26_SCALES])
def test_half_rule_rejects_one_answer_fewer_than_half(
    c30: Instrument, pan26: Instrument, code: str
):
    instrument = c30 if code in C30_SCALES else pan26
    scale = instrument.scale(code)
    n = len(scale.items)
    needed = (n + 1) // 2
    vector = {item: 2 for item in scale.items[: needed - 1]}
    score = score_instrument(instrument, vector)[code]
    assert score.value is None
    assert score.items_answered == needed - 1
    assert score.missing_reason


@pytest.mark.parametrize(
    ("code", "size", "needed"),
    [
        ("DY", 1, 1),
        ("QL2", 2, 1),
        ("RF2", 2, 1),
        ("CF", 2, 1),
        ("SF", 2, 1),
        ("NV", 2, 1),
        ("PA", 2, 1),
        ("FA", 3, 2),
        ("EF", 4, 2),
        ("PF2", 5, 3),
        ("PAN_PP", 4, 2),
        ("PAN_SX", 2, 1),
    ],
)
def test_half_rule_table_of_the_reference(
    c30: Instrument, pan26: Instrument, code: str, size: int, needed: int
):
    instrument = c30 if code in C30_SCALES else pan26
    scale = instrument.scale(code)
    assert len(scale.items) == size
    for answered in range(size + 1):
        vector = {item: 2 for item in scale.items[:answered]}
        scored = score_instrument(instrument, vector)[code].value is not None
        assert scored == (answered >= needed), (code, answered)


def test_single_item_missing_means_missing_score(c30: Instrument, pan26: Instrument):
    for instrument in (c30, pan26):
        scores = score_instrument(instrument, {})
        assert all(s.value is None for s in scores.values())
        assert all(s.items_answered == 0 for s in scores.values())
