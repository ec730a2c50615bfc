"""Locale selection: explicit switch, then the stored language (patient's or staff user's), then
the browser."""

from __future__ import annotations

from flask import current_app, g, request, session

from . import LANGUAGES

#: The language switch on every page: each language named in itself.
LANGUAGE_NAMES = (("sv", "Svenska"), ("fi", "Suomi"), ("en", "English"))


def select_locale() -> str:
    explicit = g.get("explicit_language")
    if explicit in LANGUAGES:
        return str(explicit)
    remembered = session.get("language") if session else None
    if remembered in LANGUAGES:
        return str(remembered)
    stored = g.get("patient_language") or g.get("staff_language")
    if stored in LANGUAGES:
        return str(stored)
    best = request.accept_languages.best_match(LANGUAGES)
    if best:
        return best
    return str(current_app.config["PRO_SETTINGS"].default_language)
