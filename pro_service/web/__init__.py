"""HTTP layer: security headers and the blueprints for each audience."""

from __future__ import annotations

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

from .numbers import IdConverter


def _security_headers(response: Response) -> Response:
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    )
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


def register_web(app: Flask) -> None:
    from .dev import bp as dev_bp
    from .health import bp as health_bp
    from .patient import register as register_patient_pages
    from .staff import register as register_staff_pages
    from .twilio import bp as twilio_bp

    app.url_map.converters["id"] = IdConverter
    app.register_blueprint(health_bp)
    register_patient_pages(app)
    register_staff_pages(app)
    app.register_blueprint(twilio_bp)
    app.register_blueprint(dev_bp)
    from .metrics import register_metrics

    register_metrics(app)
    trusted = app.config["PRO_SETTINGS"].trusted_proxy_count
    if trusted:
        # The client address (rate limits) and scheme come from this many trusted proxies.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=trusted, x_proto=trusted)  # type: ignore[method-assign]
    app.after_request(_security_headers)
    settings = app.config["PRO_SETTINGS"]
    if settings.is_production and settings.hsts_max_age:
        hsts = f"max-age={settings.hsts_max_age}; includeSubDomains"

        def _strict_transport(response: Response) -> Response:
            response.headers.setdefault("Strict-Transport-Security", hsts)
            return response

        app.after_request(_strict_transport)
