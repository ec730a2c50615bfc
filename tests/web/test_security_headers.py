"""Security headers on every page; HSTS in production only, with a configurable max-age."""

from __future__ import annotations

import pytest
from test_settings import PRODUCTION_OK

from pro_service import create_app
from pro_service.settings import ConfigurationError, load_settings


def _headers(overrides, path="/staff/login"):  # type: ignore[no-untyped-def]
    app = create_app(overrides)
    try:
        return app.test_client().get(path).headers
    finally:
        app.extensions["pro_db"]["engine"].dispose()


def test_production_pages_tell_browsers_to_use_https_only(app_overrides):
    production = {**app_overrides, "env": "production"}
    for path in ("/staff/login", "/q/not-a-link", "/health"):
        headers = _headers(production, path)
        assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


def test_the_hsts_max_age_is_configurable_and_zero_turns_it_off(app_overrides):
    production = {**app_overrides, "env": "production"}
    short = _headers({**production, "hsts_max_age": 300})
    assert short["Strict-Transport-Security"] == "max-age=300; includeSubDomains"
    assert "Strict-Transport-Security" not in _headers({**production, "hsts_max_age": 0})


def test_development_sends_no_hsts(app_overrides):
    # A laptop on http://127.0.0.1 must not be pinned to HTTPS.
    assert "Strict-Transport-Security" not in _headers(app_overrides)


def test_the_hsts_setting_is_read_from_the_environment():
    assert load_settings({**PRODUCTION_OK, "PRO_HSTS_MAX_AGE": "600"}).hsts_max_age == 600
    assert load_settings(PRODUCTION_OK).hsts_max_age == 31_536_000


@pytest.mark.parametrize("raw", ["-1", "²", "1e6", "ten"])
def test_a_bad_hsts_max_age_stops_start_up_naming_it(raw):
    with pytest.raises(ConfigurationError, match="PRO_HSTS_MAX_AGE must be a whole number"):
        load_settings({**PRODUCTION_OK, "PRO_HSTS_MAX_AGE": raw})


def test_a_non_ascii_digit_proxy_count_is_refused_not_a_crash():
    with pytest.raises(ConfigurationError, match="PRO_TRUSTED_PROXY_COUNT"):
        load_settings({"PRO_TRUSTED_PROXY_COUNT": "²"})
