"""Administration (``/staff/admin``): staff accounts and sites, for the admin role only.

Every page here wants a two-factor code entered in the last 15 minutes (``confirm.py``); the
views attach to the staff blueprint, so their endpoints are ``staff.admin_*``.
"""

from . import accounts, confirm, sites  # noqa: F401  (the views attach to the blueprint)
