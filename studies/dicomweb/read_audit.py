"""Audit image reads once per (user, series) per opening, not once per frame.

Opening a 400-slice CT fetches 400 frames; one audit row each would be 400
inserts and commits on the hot path, and a trail nobody can read. What the
audit must show is *who opened which images when*, so frame and rendered reads
write one row per action, user and series for each opening:

- an opening of the viewer (``opening_started``, called by the viewer page)
  starts a new one, so its first frame read is audited whatever came before;
- any other client (a DICOMweb viewer, a script) has no page: its reads of a
  series are audited again once ``READ_AUDIT_WINDOW`` seconds have passed
  since the last audited one (the viewer's too, should an opening last longer).

The markers live in Redis when ``REDIS_URL`` is set, shared by every process
that serves HTTP; otherwise in Django's default cache (per process: a second
process audits its first read too — more rows, never fewer). A read whose
audit row fails to be written is not remembered, so the next read tries again;
if the markers cannot be read, every read is audited.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.cache import BaseCache, cache
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest

from regional_cloud.audit import audit
from studies.models import Instance

logger = logging.getLogger(__name__)

READ_AUDIT_WINDOW = 300  # seconds


def _clock() -> float:
    return time.time()


@lru_cache(maxsize=1)
def _shared_markers(redis_url: str) -> BaseCache:
    return RedisCache(redis_url, {"KEY_PREFIX": "rc"})


def markers() -> BaseCache:
    """Return where the markers live: Redis if the hub has it, else the default cache."""
    redis_url = getattr(settings, "REDIS_URL", None)
    return _shared_markers(redis_url) if redis_url else cache


def _opening_key(user_pk: Any, study_uid: str) -> str:
    return f"read-audit:opening:{user_pk}:{study_uid}"


def opening_started(user: Any, study_uid: str) -> None:
    """Mark a new opening of ``study_uid`` by ``user``: its next image reads are audited."""
    try:
        markers().set(
            _opening_key(user.pk, study_uid), secrets.token_hex(8), READ_AUDIT_WINDOW * 12
        )
    except Exception:
        logger.warning("read-audit markers unavailable: every image read is audited")


def _already_audited(action: str, user_pk: Any, study_uid: str, series_uid: str) -> str | None:
    """Return this read's marker key if it is to be audited ("" if unknown), else None.

    The key names the opening; its value is when the audited read happened.
    ``cache.add`` succeeds only for the first read that brings the key; past
    the window the marker is renewed (two racing renewals write two rows:
    more, never fewer).
    """
    store = markers()
    now = _clock()
    try:
        opening = store.get(_opening_key(user_pk, study_uid)) or "-"
        key = f"read-audit:{action}:{user_pk}:{series_uid}:{opening}"
        if store.add(key, now, READ_AUDIT_WINDOW * 2):
            return key
        audited_at = store.get(key)
        if audited_at is None or now - float(audited_at) >= READ_AUDIT_WINDOW:
            store.set(key, now, READ_AUDIT_WINDOW * 2)
            return key
    except Exception:
        logger.warning("read-audit markers unavailable: every image read is audited")
        return ""
    return None


def audit_image_read(request: HttpRequest, instance: Instance, action: str, **detail: Any) -> bool:
    """Audit a frame or rendered read unless this opening's read of the series already was.

    Return whether a row was written.
    """
    study = instance.study
    series_uid = instance.series.series_instance_uid
    user_pk = getattr(request.user, "pk", None)
    key = _already_audited(action, user_pk, study.study_instance_uid, series_uid)
    if key is None:
        return False
    try:
        audit(
            action=action,
            actor=request.user,
            object_type="study",
            object_id=study.uuid,
            patient_ref=study.patient.uuid,
            study_uid=study.study_instance_uid,
            request=request,
            detail={
                "series_instance_uid": series_uid,
                "sop_instance_uid": instance.sop_instance_uid,
                "first_of_opening": True,
                **detail,
            },
        )
    except BaseException:
        if key:
            with contextlib.suppress(Exception):
                markers().delete(key)  # not written: the next read must try again
        raise
    return True
