"""Examples of a site's study ID format, shown to nurses instead of the regular expression."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pro_service.patients.study_ids import example_study_id


@pytest.mark.parametrize(
    ("pattern", "example"),
    [
        (r"STO-\d{3}", "STO-001"),
        (r"UPP\d{4}", "UPP0001"),
        (r"(HEL|TKU)-[0-9]{2,4}[A-Z]?", "HEL-01"),
        (r"SP-[A-Z]{2}-\d\d", "SP-AA-01"),
        (r"[a-z]{3}-?\d+", "aaa1"),
    ],
)
def test_an_example_reads_like_an_id_and_matches_its_format(pattern, example):
    assert example_study_id(pattern) == example
    assert re.fullmatch(pattern, example)


@pytest.mark.parametrize("pattern", [r"[^x]+", r"(a)\1", None, ""])
def test_a_format_it_cannot_follow_gives_no_example_rather_than_a_wrong_one(pattern):
    assert example_study_id(pattern) is None


@given(
    st.lists(
        st.sampled_from(
            [r"\d", r"[A-Z]", "-", "X", r"\d{3}", r"[0-9]{2,4}", r"(AB|CD)", r"[a-f]?"]
        ),
        min_size=1,
        max_size=6,
    )
)
def test_every_example_given_matches_its_format(parts):
    pattern = "".join(parts)
    example = example_study_id(pattern)
    assert example is not None
    assert re.fullmatch(pattern, example)
