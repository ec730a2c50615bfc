"""Extensions, created unbound here and bound to an app in :func:`pro_service.create_app`."""

from __future__ import annotations

from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect

from .db import Database

db = Database()
babel = Babel()
csrf = CSRFProtect()
