"""The staff pages (``/staff``): sign-in, the completion board, patients, audit trail, exports.

Every view is declared with :func:`.auth.staff_page`, which requires a verified sign-in and one
of the given roles; objects come through :mod:`pro_service.staff.access`, which answers
"not found" for another site's patient, assessment, message or score.
"""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("staff", __name__, url_prefix="/staff")


def register(app: Flask) -> None:
    # The modules attach their views to ``bp``.
    from . import (  # noqa: F401
        account,
        admin_pages,
        anchor_dates,
        audit,
        auth,
        board,
        exports,
        missing_data,
        patient_page,
        patients,
        set_password,
    )

    app.register_blueprint(bp)
