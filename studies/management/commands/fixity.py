"""Re-hash archived objects and report every one that differs from the index."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from studies.integrity import fixity_check


class Command(BaseCommand):
    help = "Re-hash all (or a random sample of) archived instances against their SHA-256."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--sample", type=int, help="check only this many, chosen at random")
        parser.add_argument("--study", help="check only this StudyInstanceUID")

    def handle(self, *args: Any, **options: Any) -> None:
        report = fixity_check(sample=options["sample"], study_uid=options["study"])
        for label, keys in (
            ("MISMATCH", report.mismatched),
            ("MISSING", report.missing),
            ("UNREADABLE", report.unreadable),
        ):
            for key in keys:
                self.stdout.write(f"{label} {key}")
        self.stdout.write(
            f"fixity: {report.checked} checked, {len(report.mismatched)} mismatched, "
            f"{len(report.missing)} missing, {len(report.unreadable)} unreadable"
        )
        if not report.ok:
            raise CommandError("fixity check found problems (listed above)")
