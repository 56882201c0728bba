"""Delete browser uploads idle past the expiry, with their chunks in the archive store."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from studies.uploads.services import uploads_cleanup


class Command(BaseCommand):
    help = "Delete upload sessions idle longer than UPLOAD_EXPIRY_HOURS and their stored chunks."

    def handle(self, *args: Any, **options: Any) -> None:
        removed = uploads_cleanup()
        self.stdout.write(f"uploads_cleanup: {removed} expired uploads removed")
