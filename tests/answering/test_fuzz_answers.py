"""Property-based fuzzing of the answer-saving endpoint: never a 500, never a half-saved form."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import stored_answers
from pages import csrf_of

SCREEN_ITEMS = {1, 2, 3, 4, 5}  # QLQ-C30 screen 1, four answers each (codes 1-4)
CONTROL = {"csrf_token", "screen", "nav"}

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
values = st.lists(
    st.one_of(st.sampled_from(["1", "2", "3", "4", "0", "5", "01", " 2", "2.0", ""]), text),
    min_size=1,
    max_size=2,
)
field_names = st.one_of(
    st.sampled_from(["q1", "q2", "q3", "q4", "q5", "q6", "q31", "q0", "q01", "q001", "Q1", "nav"]),
    st.builds(lambda n: f"q{n}", st.integers(min_value=-5, max_value=100_000)),
    text,
)
forms = st.dictionaries(field_names, values, max_size=7)
screens = st.one_of(st.just(["1"]), st.lists(st.sampled_from(["1", "2", "x", ""]), max_size=2))
navs = st.one_of(
    st.none(), st.sampled_from([["next"], ["back"], ["review"], ["jump"], ["next", "back"]])
)


def _expected(form: dict[str, list[str]]) -> dict[int, int] | None:
    """An independent statement of the rules: the answers to save, or None for a 400."""
    if form.get("screen") != ["1"]:
        return None
    if "nav" in form and (
        len(form["nav"]) != 1 or form["nav"][0] not in {"next", "back", "review"}
    ):
        return None
    answers = {}
    for name, vals in form.items():
        if name in CONTROL:
            continue
        item = next((n for n in SCREEN_ITEMS if name == f"q{n}"), None)
        if item is None:
            return None
        if len(vals) != 1 or vals[0] not in {"1", "2", "3", "4"}:
            return None
        answers[item] = int(vals[0])
    return answers


def test_fuzzed_screen_posts_save_exactly_the_valid_forms(app, link):
    client = app.test_client()
    csrf = csrf_of(client.get(link.screen(1)).get_data(as_text=True))

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(forms, screens, navs)
    def check(extra, screen, nav):
        form = {k: v for k, v in extra.items() if k not in CONTROL}
        form["screen"] = screen
        if nav is not None:
            form["nav"] = nav
        form = {k: v for k, v in form.items() if v}
        before = stored_answers(app, link.assessment_id)
        response = client.post(link.screen(1), data={**form, "csrf_token": csrf})
        after = stored_answers(app, link.assessment_id)
        expected = _expected(form)
        if expected is None:
            assert response.status_code == 400, form
            assert after == before
            assert "sparades inte" in response.get_data(as_text=True)
        else:
            assert response.status_code == 303, form
            assert after == {**before, **expected}

    check()
