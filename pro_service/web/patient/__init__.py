"""The patient questionnaire pages (``/q/<token>``): no login, the link is the key.

Every request of this blueprint is counted against the client address's rate limit (in the
database, so it holds across workers), then looks its assessment up by the link token. Pages get
``Cache-Control: no-store`` and show no name, phone number or diagnosis.

What a link shows, decided here once:

* unknown, expired, cancelled, not yet open, or completed in another browser: the same kind
  "this link cannot be used" page with status 404, so nobody can tell whether a token exists;
* completed in this browser session (right after submitting): the thank-you page, so a double
  tap, the back button or a second tab lands on "thank you" instead of an error;
* too many requests from one address: a kind 429 page.

Language: the switch on the page (remembered in the session), else the language stored for the
patient whose link it is (also on the "cannot be used" page of a known but closed link: a
patient with an old link should still read it in their language; telling that page apart from an
unknown link's would need the 192-bit token itself), else the browser's Accept-Language.
Oversized bodies get 413 (Payload Too Large) rather than a bare 400: the same kind page, with the
status code that says what happened.
"""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("patient", __name__, url_prefix="/q")


def register(app: Flask) -> None:
    from ...extensions import csrf
    from . import errors, hooks, views  # noqa: F401  (they attach to ``bp``)

    # CSRF is checked by the blueprint's own hook, after the link has been looked up, so that
    # a failed check can be explained in the patient's language.
    csrf.exempt(bp)
    app.register_blueprint(bp)
