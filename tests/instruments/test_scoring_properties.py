"""Properties of the scoring that hold for every possible set of answers (hypothesis)."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from pro_service.instruments import Instrument, load_instruments, score_instrument

from .conftest import QUESTIONNAIRES

# Module level, because hypothesis runs a test body many times per fixture instance.
REGISTRY = load_instruments(QUESTIONNAIRES)
C30 = REGISTRY.get("qlq-c30")
PAN26 = REGISTRY.get("qlq-pan26")


def answer_sets(instrument: Instrument) -> st.SearchStrategy[dict[int, int | None]]:
    """Any answers to ``instrument``: each item missing or one of its codes."""
    return st.fixed_dictionaries(
        {
            number: st.none() | st.sampled_from(item.codes)
            for number, item in instrument.items.items()
        }
    )


both = st.sampled_from([C30, PAN26]).flatmap(lambda i: st.tuples(st.just(i), answer_sets(i)))


@settings(max_examples=300)
@given(both)
def test_every_score_is_between_0_and_100(case: tuple[Instrument, dict[int, int | None]]):
    instrument, answers = case
    for score in score_instrument(instrument, answers).values():
        assert score.value is None or 0 <= score.value <= 100


@settings(max_examples=300)
@given(both)
def test_half_rule_equals_imputing_the_mean_of_answered_items(
    case: tuple[Instrument, dict[int, int | None]],
):
    """The manual's wording: missing items take the mean of the answered ones, then the usual
    formula over all n items. Computed here independently, in exact fractions."""
    instrument, answers = case
    scores = score_instrument(instrument, answers)
    for scale in instrument.scales:
        answered = [answers[i] for i in scale.items if answers[i] is not None]
        n = len(scale.items)
        if len(answered) * 2 < n:
            assert scores[scale.code].value is None
            continue
        mean = Fraction(sum(answered), len(answered))
        imputed = [Fraction(answers[i]) if answers[i] is not None else mean for i in scale.items]
        raw = sum(imputed) / n
        item = instrument.items[scale.items[0]]
        step = (raw - 1) / item.code_range
        expected = (1 - step) * 100 if scale.transform == "functional" else step * 100
        value = scores[scale.code].value
        assert value is not None
        assert abs(value - expected) <= 1e-9


@settings(max_examples=300)
@given(both, st.data())
def test_raising_one_answer_moves_every_score_the_expected_way(
    case: tuple[Instrument, dict[int, int | None]], data: st.DataObject
):
    """Functional-transform scores fall (or stay), symptom and global scores rise (or stay);
    so does the summary fall, as every component is a function or a reversed symptom."""
    instrument, answers = case
    raisable = [
        n for n, code in answers.items() if code is not None and code < instrument.items[n].max_code
    ]
    if not raisable:
        return
    item = data.draw(st.sampled_from(raisable))
    higher = dict(answers)
    codes = instrument.items[item].codes
    higher[item] = data.draw(st.sampled_from([c for c in codes if c > answers[item]]))
    before = score_instrument(instrument, answers)
    after = score_instrument(instrument, higher)
    for scale in instrument.scales:
        old, new = before[scale.code].value, after[scale.code].value
        assert (old is None) == (new is None)  # which items are answered did not change
        if old is None or new is None:
            continue
        if scale.transform == "functional":
            assert new <= old
        else:
            assert new >= old
        if item not in scale.items:
            assert new == old
    for summary in instrument.summary_scores:
        old, new = before[summary.code].value, after[summary.code].value
        if old is not None and new is not None:
            assert new <= old + 1e-12


@settings(max_examples=200)
@given(answer_sets(C30))
def test_summary_is_the_mean_of_its_components_with_symptoms_reversed(
    answers: dict[int, int | None],
):
    scores = score_instrument(C30, answers)
    summary = C30.summary_scores[0]
    values = [scores[c].value for c in summary.components]
    if any(v is None for v in values):
        assert scores[summary.code].value is None
        return
    contributions = [
        100 - v if c in summary.reversed else v
        for c, v in zip(summary.components, values, strict=True)
    ]
    assert abs(scores[summary.code].value - sum(contributions) / 13) <= 1e-9
