"""Locale selection: explicit switch, then the stored language (patient's or staff user's), then
the browser."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from babel.support import NullTranslations, Translations
from flask import current_app, g, request, session
from flask_babel import force_locale, get_translations
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from .. import LANGUAGES
from ..settings import ConfigurationError

log = logging.getLogger(__name__)

#: The language switch on every page: each language named in itself.
LANGUAGE_NAMES = (("sv", "Svenska"), ("fi", "Suomi"), ("en", "English"))


def ensure_catalogs(directory: Path, languages: Sequence[str], *, production: bool) -> None:
    """Every language's compiled catalog, compiled now from its ``.po`` where it is missing or
    older (a checkout installed without ``make``), so that sv and fi pages never fall back to
    English unnoticed. In production a catalog that cannot be had stops start-up, naming it."""
    for language in languages:
        folder = directory / language / "LC_MESSAGES"
        compiled, source = folder / "messages.mo", folder / "messages.po"
        fresh = compiled.is_file() and (
            not source.is_file() or compiled.stat().st_mtime >= source.stat().st_mtime
        )
        if fresh:
            continue
        if source.is_file():
            try:
                _compile(source, compiled, language)
                continue
            except OSError as exc:
                problem = f"cannot write {compiled}: {exc}"
        else:
            problem = f"{compiled} is missing (and no {source.name} to compile it from)"
        if production:
            raise ConfigurationError(f"translation catalog for {language!r}: {problem}")
        log.warning("translation catalog for %r: %s; pages fall back to English", language, problem)


def _compile(source: Path, target: Path, language: str) -> None:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with source.open("rb") as po:
        catalog = read_po(po, locale=language)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with partial.open("wb") as out:
        write_mo(out, catalog)
    os.replace(partial, target)  # two processes compiling at once each replace it whole


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


def request_language() -> str:
    """This request's language, chosen once per request (kept in ``g``) by the rule Flask-Babel's
    locale selector follows (:func:`select_locale`), without making Flask-Babel's locale."""
    language: str | None = g.get("language")
    if language is None:
        language = g.language = select_locale()
    return language


def catalog(language: str) -> Translations | NullTranslations:
    """``language``'s message catalog, as Flask-Babel loads it, kept by the app.

    Flask-Babel keeps its catalogs for the app's lifetime too, but finds the request's locale
    and its catalog again on every request (about 35 µs through some twenty context-local
    look-ups); a questionnaire screen needs nothing else of it. Called in a request.
    """
    kept: dict[str, Translations | NullTranslations] = current_app.extensions.setdefault(
        "page_catalogs", {}
    )
    found = kept.get(language)
    if found is None:
        with force_locale(language):
            found = kept[language] = get_translations()
    return found


def page_translations() -> dict[str, Any]:
    """Template context: ``gettext`` and ``ngettext`` bound to this request's catalog.

    Flask-Babel's template functions look the catalog up again for every string (about 25 µs
    each, through several context-local lookups; a questionnaire page has about ten strings).
    These do it once per page and behave as Jinja's "newstyle" gettext, which ``_()`` and
    ``{% trans %}`` call: the result is marked safe where autoescaping is on, and
    ``%(name)s`` placeholders are filled from the keyword arguments, escaped.
    """
    translations = catalog(request_language())

    @pass_context
    def gettext(context: Context, message: str, **variables: Any) -> str:
        text: str = translations.ugettext(message)
        if context.eval_ctx.autoescape:
            text = Markup(text)  # noqa: S704 (our own catalog, as Jinja does)
        if not variables and "%" not in text:
            return text  # what ``text % {}`` gives, without formatting (most of a page's texts)
        return text % variables

    @pass_context
    def ngettext(context: Context, singular: str, plural: str, num: int, **variables: Any) -> str:
        variables.setdefault("num", num)
        text: str = translations.ungettext(singular, plural, num)
        if context.eval_ctx.autoescape:
            text = Markup(text)  # noqa: S704 (our own catalog, as Jinja does)
        return text % variables

    return {"gettext": gettext, "ngettext": ngettext}
