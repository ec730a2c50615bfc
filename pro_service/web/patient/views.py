"""The patient's pages: welcome, one screen of items at a time, review, thank you, opt-out.

Views are thin: check the link, read the form through the questionnaire service, commit once,
redirect (POST/redirect/GET, so reloading never re-sends answers).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import NamedTuple, TypeVar

from babel.lists import format_list
from flask import (
    current_app,
    g,
    get_template_attribute,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import format_date, ngettext
from flask_babel import gettext as _
from markupsafe import Markup, escape
from sqlalchemy.exc import IntegrityError

from ...answering import questionnaire
from ...answering.questionnaire import AnswerFormError, Flow, FlowScreen, Link
from ...answering.responses import AssessmentClosed
from ...extensions import db
from ...instruments import Instrument, InstrumentRegistry
from ...models import AssessmentStatus
from ..i18n import request_language
from ..numbers import whole_number
from . import bp
from .errors import AlreadyAnswered, BadForm, LinkUnavailable
from .hooks import page_url

#: How many links a browser session remembers (opened, completed) for the thank-you page.
REMEMBERED_COMPLETIONS = 5
#: How long after completion a browser that had the link open still gets "thank you".
JUST_COMPLETED = timedelta(minutes=30)
#: Reading speed assumed for "about N minutes": items answered per minute.
ITEMS_PER_MINUTE = 5

T = TypeVar("T")


#: A number range or fraction ("1–7", "3/7") that must not be broken across lines.
_NUMBER_RUN = re.compile(r"\d+(?:\s?[–\-/]\s?\d+)+")


@bp.app_template_filter("keep_numbers_together")
def keep_numbers_together(text: str) -> Markup:
    """Escape ``text`` and keep each number range on one line: at 320 px a Finnish heading
    otherwise broke as "1–" / "7"."""
    out: list[str] = []
    position = 0
    for match in _NUMBER_RUN.finditer(text):
        out.append(str(escape(text[position : match.start()])))
        out.append(f'<span class="nowrap">{escape(match.group())}</span>')
        position = match.end()
    out.append(str(escape(text[position:])))
    return Markup("".join(out))  # noqa: S704 - every part is escaped above


def _registry() -> InstrumentRegistry:
    registry: InstrumentRegistry = current_app.extensions["instruments"]
    return registry


def _usable() -> Link:
    """This link if its assessment still accepts answers; otherwise the kind 404 page, or for a
    link whose answers were sent, a page saying they were received."""
    link: Link | None = g.link
    if link is not None and link.status == AssessmentStatus.COMPLETED.value:
        raise AlreadyAnswered()
    if link is None or not questionnaire.accepts_answers(link, g.now):
        raise LinkUnavailable()
    _remember("visited", link)
    return link


def _finished_here() -> Link | None:
    """The assessment if it was completed in this browser session just now, else None.

    "In this browser session": submitted from it, or, within a few minutes of the completion,
    opened from it before, so that a double tap or a second tab whose request was already on
    its way (with the cookie of before the completion) also lands on "thank you".
    """
    link: Link | None = g.link
    if link is None or link.status != AssessmentStatus.COMPLETED.value:
        return None
    if link.assessment_id in session.get("completed", []):
        return link
    recent = link.completed_at is not None and g.now - link.completed_at <= JUST_COMPLETED
    if recent and link.assessment_id in session.get("visited", []):
        _remember("completed", link)
        return link
    return None


def _remember(key: str, link: Link) -> None:
    ids = list(session.get(key, []))
    if ids and ids[-1] == link.assessment_id:
        return
    ids = [i for i in ids if i != link.assessment_id]
    session[key] = [*ids, link.assessment_id][-REMEMBERED_COMPLETIONS:]


#: What a kept store holds at most (see :func:`_kept`): a bound on the memory it takes.
KEPT_PER_STORE = 10_000


def _kept(store: str, key: tuple[object, ...], make: Callable[[], T], *, html: bool = False) -> T:
    """``make()``, made once per ``key`` and kept by the app (in ``app.extensions[store]``):
    for what every patient sees alike, made from the instruments and the catalogs, which do
    not change while the app runs. HTML (``html``) is made afresh while templates reload, in
    development. What is kept must never depend on the patient or the request."""
    kept: dict[tuple[object, ...], T] = current_app.extensions.setdefault(store, {})
    value = kept.get(key)
    if value is None:
        value = make()
        if not (html and current_app.jinja_env.auto_reload) and len(kept) < KEPT_PER_STORE:
            kept[key] = value
    return value


def _flow(link: Link) -> Flow:
    """The link's screens; the same for every link with the same instruments, so kept per
    list of instruments."""
    return _kept(
        "patient_flows", link.instruments, lambda: questionnaire.flow_for(link, _registry())
    )


def _notices(flow: Flow) -> tuple[str, ...]:
    """One notice naming every instrument shown in paraphrase instead of its licensed text;
    kept by the app per language and instruments (they and the catalogs do not change while it
    runs).

    A single instrument keeps its own notice from its file; several share one sentence, so the
    page does not repeat the same disclaimer once per instrument.
    """
    lang = request_language()
    return _kept(
        "patient_notices",
        (lang, *flow.key),
        lambda: tuple(_paraphrase_notices(flow, lang)),
    )


def _paraphrase_notices(flow: Flow, lang: str) -> list[str]:
    paraphrased = [
        instrument
        for instrument in flow.instruments
        if instrument.text_source == "paraphrase" and not instrument.is_licensed(lang)
    ]
    if len(paraphrased) <= 1:
        return [instrument.paraphrase_notice[lang] for instrument in paraphrased]
    names = format_list([instrument.name[lang] for instrument in paraphrased], locale=lang)
    return [
        _(
            "The question texts are the project's own simplified paraphrases for development "
            "and demonstration. They are not the licensed EORTC text of %(instruments)s.",
            instruments=names,
        )
    ]


def _answers(link: Link) -> dict[int, int]:
    return questionnaire.answers_of(db.connection(), link)


def _save(link: Link, flow_screen: FlowScreen, language: str, answers: dict[int, int]) -> None:
    connection = db.connection()
    questionnaire.save_screen(
        connection,
        now=g.now,
        link=link,
        flow_screen=flow_screen,
        language=language,
        answers=answers,
    )
    connection.commit()


@bp.get("/<token>")
def entry(token: str) -> ResponseReturnValue:
    """The link from the SMS: the welcome screen, or where the patient left off."""
    if _finished_here() is not None:
        return redirect(url_for(".thanks", token=token), 303)
    link = _usable()
    answers = _answers(link)
    if not answers:
        return _welcome(token, link, answers)
    resume = _flow(link).resume_at(answers)
    if resume is None:
        return redirect(url_for(".review", token=token), 303)
    return redirect(url_for(".screen", token=token, number=resume), 303)


@bp.get("/<token>/welcome")
def welcome(token: str) -> ResponseReturnValue:
    link = _usable()
    return _welcome(token, link, _answers(link))


def _welcome(token: str, link: Link, answers: dict[int, int]) -> ResponseReturnValue:
    flow = _flow(link)
    item_count = sum(len(s.items) for s in flow.screens)
    minutes = max(5, round(item_count / ITEMS_PER_MINUTE))
    return render_template(
        "patient/welcome.html",
        token=token,
        minutes=minutes,
        duration=ngettext("about %(num)s minute", "about %(num)s minutes", minutes),
        closes=format_date(link.window_closes, format="long"),
        started=bool(answers),
        first_screen=flow.resume_at(answers) or 1,
        opted_out=link.opted_out,
        notices=_notices(flow),
    )


def _screen_number(number: str, flow: Flow, token: str) -> FlowScreen:
    screen = whole_number(number, high=99_999)
    flow_screen = flow.screen(screen) if screen is not None else None
    if flow_screen is None:
        raise BadForm(
            _("This page does not exist in the questionnaire."),
            back_url=url_for(".entry", token=token),
        )
    return flow_screen


_FORM_PROBLEMS = {
    "wrong_screen": lambda item: _("The answers were sent for a different page."),
    "unknown_item": lambda item: _(
        "The answers included question %(number)s, which is not on this page.", number=item
    ),
    "bad_code": lambda item: _(
        "The answer to question %(number)s is not one of the choices on this page.", number=item
    ),
    "repeated": lambda item: _(
        "Question %(number)s was answered more than once on the same page.", number=item
    ),
    "unexpected_field": lambda item: _("The page sent something that is not an answer."),
    "bad_navigation": lambda item: _("The page sent an unknown button."),
}


@bp.route("/<token>/s/<number>", methods=["GET", "POST"])
def screen(token: str, number: str) -> ResponseReturnValue:
    if _finished_here() is not None:
        return redirect(url_for(".thanks", token=token), 303)
    link = _usable()
    flow = _flow(link)
    flow_screen = _screen_number(number, flow, token)
    if request.method == "POST":
        return _save_screen(token, link, flow, flow_screen)
    answers = _answers(link)
    from_review = request.args.get("from") == "review"
    return _render_screen(token, flow, flow_screen, answers, from_review=from_review)


def _save_screen(
    token: str, link: Link, flow: Flow, flow_screen: FlowScreen
) -> ResponseReturnValue:
    try:
        form = questionnaire.read_screen_form(flow_screen, request.form.to_dict(flat=False))
    except AnswerFormError as exc:
        back_url = url_for(".screen", token=token, number=flow_screen.number)
        raise BadForm(_FORM_PROBLEMS[exc.problem](exc.item), back_url=back_url) from exc
    for attempt in (1, 2):
        try:
            _save(link, flow_screen, request_language(), form.answers)
            break
        except IntegrityError:
            # The same answer arrived at the same moment from another tab: save over it.
            db.rollback()
            if attempt == 2:
                raise
        except AssessmentClosed as exc:
            raise LinkUnavailable() from exc
    if form.nav == "back":
        if flow_screen.number == 1:
            return redirect(url_for(".welcome", token=token), 303)
        return redirect(url_for(".screen", token=token, number=flow_screen.number - 1), 303)
    if form.nav == "review" or flow_screen.number == flow.total:
        return redirect(url_for(".review", token=token), 303)
    return redirect(url_for(".screen", token=token, number=flow_screen.number + 1), 303)


def _render_screen(
    token: str,
    flow: Flow,
    flow_screen: FlowScreen,
    answers: dict[int, int],
    *,
    from_review: bool = False,
) -> ResponseReturnValue:
    lang = request_language()
    instrument = flow_screen.instrument
    recalls = {instrument.recall_text(n, lang) for n in flow_screen.items}
    shared_recall = recalls.pop() if len(recalls) == 1 else None
    items = [
        _question(instrument, n, lang, answers.get(n), own_recall=shared_recall is None)
        for n in flow_screen.items
    ]
    return render_template(
        "patient/screen.html",
        token=token,
        number=flow_screen.number,
        total=flow.total,
        texts=_screen_texts(flow, flow_screen, lang, from_review=from_review),
        action=page_url(),
        recall=shared_recall,
        items=items,
        from_review=from_review,
        notices=_notices(flow),
    )


class ScreenTexts(NamedTuple):
    """A screen's own texts in one language: the same for every patient, so made once."""

    title: Markup  # "Page 3 of 15"
    progress: Markup  # the same, its numbers kept on one line
    heading: Markup  # the screen's heading (or the instrument's name), numbers kept together
    next: Markup  # the main button: on to the next page, to the review, or back to it
    back: Markup


def _screen_texts(
    flow: Flow, flow_screen: FlowScreen, lang: str, *, from_review: bool
) -> ScreenTexts:
    """The screen's texts in ``lang`` (the request's language), kept by the app per language,
    instruments, screen and way in (from the review page or not), as the notices are: a
    page's texts were about a third of its rendering, each looked up in the catalog again."""

    def make() -> ScreenTexts:
        heading = flow_screen.screen.heading[lang] if flow_screen.screen.heading else None
        # As the templates' gettext: the catalog's text is markup, the values are escaped.
        title = Markup(_("Page %(number)s of %(total)s")) % {  # noqa: S704 - our own catalog
            "number": flow_screen.number,
            "total": flow.total,
        }
        if from_review:
            label = _("Save and return to review")
        elif flow_screen.number == flow.total:
            label = _("Go to review")
        else:
            label = _("Next")
        return ScreenTexts(
            title=title,
            progress=keep_numbers_together(title),
            heading=keep_numbers_together(heading or flow_screen.instrument.name[lang]),
            next=Markup(label),  # noqa: S704 - our own catalog, as the templates take it
            back=Markup(_("Back")),  # noqa: S704 - the same
        )

    key = (lang, *flow.key, flow_screen.number, from_review)
    return _kept("patient_screen_texts", key, make)


def _question(
    instrument: Instrument, number: int, lang: str, answer: int | None, *, own_recall: bool
) -> Markup:
    """One question of a screen as HTML (``patient/_question.html``): its text, its choices
    and the patient's answer checked. A screen is mostly these, and they are the same for
    every patient, so each is rendered once per instrument, question, language, answer and
    recall, and kept by the app (rendered afresh while templates reload, in development)."""

    def make() -> Markup:
        item = instrument.item(number)
        render = get_template_attribute("patient/_question.html", "question")
        return Markup(  # noqa: S704 - a template's output, escaped by Jinja
            render(
                number=number,
                text=instrument.item_text(number, lang),
                recall=instrument.recall_text(number, lang) if own_recall else None,
                options=[(code, instrument.label(number, code, lang)) for code in item.codes],
                answer=answer,
                wide=len(item.codes) > 4,
            )
        )

    key = (instrument.id, instrument.version, number, lang, answer, own_recall)
    return _kept("patient_questions", key, make, html=True)


def _screen_heading(flow_screen: FlowScreen, lang: str) -> str:
    return (flow_screen.screen.heading or flow_screen.instrument.name)[lang]


def _review_texts(flow: Flow, lang: str) -> tuple[tuple[Markup, Markup], ...]:
    """Each screen's heading and "change answers" label on the review page, in ``lang`` (the
    request's language); kept by the app per language and instruments, as the notices are."""

    def make() -> tuple[tuple[Markup, Markup], ...]:
        # As the templates' gettext: the catalog's text is markup, the values are escaped.
        page = Markup(_("Page %(number)s: %(heading)s"))  # noqa: S704 - our own catalog
        change = Markup(_("Change answers on page %(number)s"))  # noqa: S704 - the same
        return tuple(
            (
                keep_numbers_together(
                    page % {"number": screen.number, "heading": _screen_heading(screen, lang)}
                ),
                change % {"number": screen.number},
            )
            for screen in flow.screens
        )

    key = (lang, *flow.key)
    return _kept("patient_review_texts", key, make)


def _review_answer(instrument: Instrument, number: int, lang: str, answer: int | None) -> Markup:
    """One question and its answer on the review page (``patient/_review_answer.html``),
    rendered once per instrument, question, language and answer and kept, as
    :func:`_question` keeps a screen's questions."""

    def make() -> Markup:
        render = get_template_attribute("patient/_review_answer.html", "review_answer")
        return Markup(  # noqa: S704 - a template's output, escaped by Jinja
            render(
                number=number,
                text=instrument.item_text(number, lang),
                answer=None if answer is None else instrument.label(number, answer, lang),
            )
        )

    key = (instrument.id, instrument.version, number, lang, answer)
    return _kept("patient_review_answers", key, make, html=True)


@bp.get("/<token>/review")
def review(token: str) -> ResponseReturnValue:
    if _finished_here() is not None:
        return redirect(url_for(".thanks", token=token), 303)
    link = _usable()
    flow = _flow(link)
    answers = _answers(link)
    lang = request_language()
    unanswered = flow.unanswered(answers)
    missing = [
        {
            "screen": flow_screen.number,
            "items": [(n, flow_screen.instrument.item_text(n, lang)) for n in items],
        }
        for flow_screen, items in unanswered
    ]
    screens = [
        {
            "number": flow_screen.number,
            "heading": heading,
            "change": change,
            "items": [
                _review_answer(flow_screen.instrument, n, lang, answers.get(n))
                for n in flow_screen.items
            ],
        }
        for flow_screen, (heading, change) in zip(
            flow.screens, _review_texts(flow, lang), strict=True
        )
    ]
    return render_template(
        "patient/review.html",
        token=token,
        total=flow.total,
        missing=missing,
        screens=screens,
        missing_count=sum(len(items) for _screen, items in unanswered),
        notices=_notices(flow),
    )


@bp.route("/<token>/submit", methods=["GET", "POST"])
def submit(token: str) -> ResponseReturnValue:
    if _finished_here() is not None:
        return redirect(url_for(".thanks", token=token), 303)
    link = _usable()
    if request.method == "GET":
        return redirect(url_for(".review", token=token), 303)
    questionnaire.submit(
        db.session, now=g.now, link=link, registry=_registry(), language=request_language()
    )
    db.session.commit()
    # Completed now or by a simultaneous submit from this link (double tap, two tabs).
    _remember("completed", link)
    return redirect(url_for(".thanks", token=token), 303)


@bp.get("/<token>/thanks")
def thanks(token: str) -> ResponseReturnValue:
    link = _finished_here()
    if link is None:
        if g.link is not None and g.link.status == AssessmentStatus.COMPLETED.value:
            raise AlreadyAnswered()  # sent from another browser: "received", nothing shown
        raise LinkUnavailable()
    following = questionnaire.next_questionnaire(
        db.connection(), now=g.now, link=link, vault=current_app.extensions["vault"]
    )
    next_label = None
    if following is not None:
        try:
            labels = current_app.extensions["schedule"].timepoint(following.timepoint).label
        except KeyError:  # no longer in the schedule file
            labels = {}
        next_label = labels.get(request_language()) or labels.get("en") or following.timepoint
    return render_template(
        "patient/thanks.html",
        token=token,
        opted_out=link.opted_out,
        next_url=None if following is None else url_for(".welcome", token=following.token),
        next_label=next_label,
    )


def _opt_out_allowed() -> Link:
    link = _finished_here()
    if link is not None:
        return link
    if g.link is not None and g.link.status == AssessmentStatus.COMPLETED.value:
        raise LinkUnavailable()  # stopping messages is offered only where the answers were sent
    return _usable()


@bp.route("/<token>/stop", methods=["GET", "POST"])
def stop(token: str) -> ResponseReturnValue:
    """Stop further text messages: a confirmation page, then the POST that does it."""
    link = _opt_out_allowed()
    if request.method == "POST":
        questionnaire.opt_out(db.session, now=g.now, patient_id=link.patient_id)
        db.session.commit()
        return redirect(url_for(".stopped", token=token), 303)
    if link.opted_out:
        return redirect(url_for(".stopped", token=token), 303)
    return render_template(
        "patient/stop.html",
        token=token,
        back_url=url_for(".thanks" if _finished_here() else ".welcome", token=token),
    )


@bp.get("/<token>/stopped")
def stopped(token: str) -> ResponseReturnValue:
    link = _opt_out_allowed()
    if not link.opted_out:
        raise LinkUnavailable()
    continue_url = None if _finished_here() else url_for(".entry", token=token)
    return render_template("patient/stopped.html", token=token, continue_url=continue_url)


@bp.route("/<token>/<path:rest>", methods=["GET", "POST"])
def unknown_page(token: str, rest: str) -> ResponseReturnValue:
    raise LinkUnavailable()
