"""Who may export what: data managers and admins, for the sites they hold."""

from __future__ import annotations

from ..models import Role, StaffUser

EXPORT_ROLES = frozenset({Role.DATA_MANAGER.value, Role.ADMIN.value})


class ExportForbidden(PermissionError):
    """The user's role does not allow exports."""


def export_scope(user: StaffUser) -> frozenset[int] | None:
    """The site ids ``user`` may export (None: every site); ExportForbidden for other roles."""
    if not user.is_active or user.role not in EXPORT_ROLES:
        raise ExportForbidden(f"role {user.role!r} may not export data")
    if user.all_sites:
        return None
    return frozenset(user.site_ids)
