"""Uploads from the browser: one resumable session per file, its chunks in the archive store.

The web processes are stateless behind a load balancer, so nothing about an
upload lives on a web server's disk: the chunks sit in the archive store under
``uploads/<session uuid>/<index>`` and these rows say which have arrived.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hospitals.models import Institution


class UploadSession(models.Model):
    """One file being uploaded in chunks, then assembled and ingested."""

    class State(models.TextChoices):
        OPEN = "open", _("Receiving chunks")
        # Claimed by one completion request; others wait for its result.
        ASSEMBLING = "assembling", _("Being stored")
        COMPLETE = "complete", _("Complete")
        FAILED = "failed", _("Failed")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="upload_sessions"
    )
    # The sending institution, fixed when the upload starts: the studies' origin.
    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="upload_sessions"
    )
    # The client's file name (any script, Chinese included), shown back in results.
    file_name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    # The whole file's SHA-256 when the client declared one; verified on completion.
    sha256 = models.CharField(max_length=64, blank=True)
    chunk_size = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    # Per-file outcomes once complete, or the reason it failed (see studies.uploads.services).
    result: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("upload")
        verbose_name_plural = _("uploads")

    def __str__(self) -> str:
        return str(self.uuid)

    @property
    def chunk_count(self) -> int:
        return max(1, -(-self.size // self.chunk_size))

    def expected_chunk_size(self, index: int) -> int:
        """Return how many bytes chunk ``index`` holds: full ones, then the remainder."""
        if index < self.chunk_count - 1:
            return self.chunk_size
        return self.size - self.chunk_size * (self.chunk_count - 1)

    def chunk_key(self, index: int) -> str:
        return f"uploads/{self.uuid}/{index}"


class UploadChunk(models.Model):
    """One chunk that arrived and sits in the archive store at its session's chunk key."""

    session = models.ForeignKey(UploadSession, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("upload chunk")
        verbose_name_plural = _("upload chunks")
        constraints = [
            models.UniqueConstraint(fields=["session", "index"], name="upload_chunk_unique_index")
        ]

    def __str__(self) -> str:
        return f"{self.session_id}:{self.index}"
