"""The staff pages (``/staff``): sign-in, the completion board, patients, audit trail, exports.

Every view is declared with :func:`.auth.staff_page`, which requires a verified sign-in and one
of the given roles; objects come through :mod:`pro_service.services.access`, which answers
"not found" for another site's patient, assessment, message or score.
"""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("staff", __name__, url_prefix="/staff")


def register(app: Flask) -> None:
    from . import audit, auth, exports, views  # noqa: F401  (they attach to ``bp``)

    app.register_blueprint(bp)
