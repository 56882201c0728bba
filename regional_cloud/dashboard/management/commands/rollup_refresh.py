"""Rebuild the dashboard's rollup tables: ``rollup_refresh --since 2026-01-01`` or ``--all``."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from regional_cloud.dashboard.rollups import rollup_refresh


class Command(BaseCommand):
    help = "Recompute the dashboard rollup tables for the days from --since on, or --all days."

    def add_arguments(self, parser: Any) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--since", help="first day to recompute, YYYY-MM-DD")
        group.add_argument("--all", action="store_true", help="recompute every day")

    def handle(self, *args: Any, **options: Any) -> None:
        since = None
        if not options["all"]:
            try:
                since = date.fromisoformat(options["since"])
            except ValueError as error:
                raise CommandError("--since: expected a date as YYYY-MM-DD") from error
        total = 0.0
        for result in rollup_refresh(since=since):
            total += result.seconds
            self.stdout.write(f"{result.table}: {result.rows} rows in {result.seconds:.2f} s")
        self.stdout.write(f"rollups refreshed in {total:.2f} s")
