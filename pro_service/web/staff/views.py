"""The staff home: each role's first page."""

from __future__ import annotations

from flask import g, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from . import bp
from .auth import home_url


@bp.get("/")
def index() -> ResponseReturnValue:
    if g.get("user") is None:
        return redirect(url_for("staff.login"))
    target = home_url(g.user)
    if target != url_for("staff.index"):
        return redirect(target)
    return render_template("staff/home.html")
