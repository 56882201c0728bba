"""``manage.py edge_agent``: run the edge agent beside an Orthanc (see studies.edge)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studies.edge.agent import GaveUp, run_agent
from studies.edge.config import ConfigError, add_arguments, config_from_options


class Command(BaseCommand):
    help = (
        "Follow an Orthanc's changes and push every stable study to the hub's STOW-RS "
        "with the edge token; the cursor moves only after the hub confirmed storage."
    )
    # The edge runs no database: no checks that would want one.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            config = config_from_options(options)
        except ConfigError as exc:
            raise CommandError(str(exc)) from exc
        try:
            report = run_agent(config, once=bool(options.get("once")))
        except GaveUp as exc:
            raise CommandError(f"gave up: {exc}", returncode=2) from exc
        self.stdout.write(
            f"{len(report.confirmed)} confirmed, {len(report.failed)} failed, "
            f"{len(report.deleted)} deleted; cursor {report.cursor}, backlog {report.backlog}"
        )
