"""Every route answers malformed ids and numbers with 4xx, never 5xx (random paths, query
strings and form fields, signed in as an admin and as a nurse, and on a patient's link)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pages import csrf_of

#: Values that once reached ``int()`` or the database as they were.
ODD_NUMBERS = [
    "2147483648",
    "2147483647",
    "99999999999999999999999",
    "²",
    "٣",
    "-1",
    "+1",
    "0",
    "",
    " 1",
    "1.5",
    "1e3",
    "0x10",
    "%00",
    "NaN",
    "１",  # a full-width digit
]
values = st.one_of(
    st.sampled_from(ODD_NUMBERS),
    st.integers(-(2**40), 2**40).map(str),
    st.text(max_size=12),
)
FIELDS = [
    "site",
    "assessment_id",
    "confirmed",
    "page",
    "before",
    "after",
    "m",
    "study_id",
    "phone",
    "language",
    "inclusion_date",
    "surgery_date",
    "reason",
    "status",
    "code",
    "timepoint",
    "instrument",
    "date_from",
    "date_to",
    "fmt",
    "object_ref",
    "screen",
    "nav",
    "q1",
    "q31",
]
SKIPPED = {"static", "staff.logout"}  # signing out ends the run's session, not a finding


def _rules(app):  # type: ignore[no-untyped-def]
    rules = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIPPED:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            rules.append((rule, method))
    return rules


def _path(rule, chosen):  # type: ignore[no-untyped-def]
    path = rule.rule
    for name in rule.arguments:
        converter = rule._converters[name]  # noqa: SLF001
        pattern = f"<{name}>" if f"<{name}>" in path else None
        for text in (f"<{name}>", *(f"<{c}:{name}>" for c in ("id", "path", "string"))):
            if text in path:
                pattern = text
        assert pattern, (rule.rule, name, converter)
        path = path.replace(pattern, quote(chosen.get(name, "1"), safe=""))
    return path


def _fuzz(app, clients):  # type: ignore[no-untyped-def]
    rules = _rules(app)

    @settings(
        max_examples=250,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        choice=st.sampled_from(range(len(rules))),
        who=st.sampled_from(sorted(clients)),
        path_values=st.dictionaries(
            st.sampled_from(["patient_id", "assessment_id", "token", "number", "scale", "rest"]),
            values,
        ),
        query=st.dictionaries(st.sampled_from(FIELDS), values, max_size=4),
        form=st.dictionaries(st.sampled_from(FIELDS), values, max_size=6),
    )
    def run(choice, who, path_values, query, form):  # type: ignore[no-untyped-def]
        rule, method = rules[choice]
        client, csrf = clients[who]
        path = _path(rule, path_values)
        if method == "GET":
            response = client.get(path, query_string=query)
        else:
            response = client.open(
                path, method=method, query_string=query, data={**form, "csrf_token": csrf}
            )
        # /readyz answers 503 by design while no scheduler runs (tests/web/test_health.py).
        expected = {503} if rule.endpoint == "health.readyz" else set()
        assert response.status_code < 500 or response.status_code in expected, (
            method,
            path,
            query,
            form,
            response.status_code,
        )

    run()


def test_no_route_answers_a_malformed_number_with_a_server_error(app, sign_in, staff_study):
    clients = {}
    for persona in ("admin", "nurse_upp"):
        client = sign_in(persona)
        clients[persona] = (client, csrf_of(client.get("/staff/account?lang=en").text))
    patient = app.test_client()
    clients["patient"] = (patient, "")
    _fuzz(app, clients)


@pytest.mark.parametrize(
    "path",
    [
        "/staff/patients/2147483648",
        "/staff/patients/99999999999999999999",
        "/staff/assessments/2147483648",
        "/staff/board?site=2147483648",
        "/staff/board?site=%C2%B2",
        "/staff/board?page=%C2%B2",
        "/staff/board?page=99999999999999999999",
        "/staff/patients/new?site=2147483648",
        "/staff/patients/new?site=-1",
        "/staff/audit?before=2147483648",
        "/staff/audit?after=%C2%B2",
    ],
)
def test_the_probes_cases_get_a_4xx_page(sign_in, path):
    client = sign_in("admin")
    assert 200 <= client.get(path).status_code < 500


def test_a_tampered_hidden_id_in_a_form_is_404(app, sign_in, staff_study):
    client = sign_in("nurse_upp")
    patient_id = staff_study.patients["UPP-001"]
    page = client.get(f"/staff/patients/{patient_id}?lang=en")
    token = csrf_of(page.text)
    for raw in ("2147483648", "²", "٣", "-1"):
        response = client.post(
            f"/staff/patients/{patient_id}/resend",
            data={"csrf_token": token, "assessment_id": raw, "confirmed": "1"},
        )
        assert response.status_code in (400, 404), (raw, response.status_code)


def test_a_screen_number_that_is_not_a_plain_number_is_a_kind_page(app, client):
    for number in ("%C2%B2", "%D9%A3", "99999999999", "-1"):
        response = client.get(f"/q/{'x' * 32}/s/{number}")
        assert response.status_code in (400, 404)
