"""Object permissions: the one place lists are filtered by what a user may see.

Models that carry object permissions declare direct foreign-key permission
tables (guardian's ``UserObjectPermissionBase``/``GroupObjectPermissionBase``),
so a filter is a join on an indexed column, not a generic string match.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import Model, QuerySet
from guardian.shortcuts import get_objects_for_user  # noqa: TID251 - the one allowed use

M = TypeVar("M", bound=Model)


def filter_by_permission(queryset: QuerySet[M], user: Any, codename: str) -> QuerySet[M]:
    """Return the objects of ``queryset`` on which ``user`` holds ``codename``.

    Only object permissions count (``accept_global_perms=False``): a global
    permission never opens every patient's study. Inactive or anonymous users
    see nothing.
    """
    if user is None or not user.is_authenticated or not user.is_active:
        return queryset.none()
    return get_objects_for_user(
        user,
        codename,
        klass=queryset,
        accept_global_perms=False,
        with_superuser=False,
    )


def has_object_permission(user: Any, codename: str, obj: Model) -> bool:
    """Return whether ``user`` holds ``codename`` on ``obj`` itself (not globally)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    model = type(obj)
    return filter_by_permission(model._default_manager.filter(pk=obj.pk), user, codename).exists()
