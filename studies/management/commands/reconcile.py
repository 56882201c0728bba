"""Find index rows without objects and archived objects without rows."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from studies.integrity import reconcile


class Command(BaseCommand):
    help = "Compare the archive with the index and list what is on one side only."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--delete-orphans",
            action="store_true",
            help="delete objects that no index row refers to (after --grace seconds)",
        )
        parser.add_argument("--grace", type=float, default=60.0)

    def handle(self, *args: Any, **options: Any) -> None:
        report = reconcile(delete_orphans=options["delete_orphans"], grace_seconds=options["grace"])
        for key in report.rows_without_object:
            self.stdout.write(f"ROW WITHOUT OBJECT {key}")
        for key in report.objects_without_row:
            deleted = " (deleted)" if key in report.deleted else ""
            self.stdout.write(f"OBJECT WITHOUT ROW {key}{deleted}")
        self.stdout.write(
            f"reconcile: {report.objects} objects, {report.rows} rows, "
            f"{len(report.rows_without_object)} rows without object, "
            f"{len(report.objects_without_row)} objects without row"
        )
        if report.rows_without_object:
            raise CommandError("index rows point to objects that are missing from the archive")
