"""Build the demo region. Running it again creates nothing twice."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from regional_cloud.demo.network import DEMO_USERS, seed_network
from regional_cloud.demo.studies import seed_studies


class Command(BaseCommand):
    help = "Create the demo region, its people and edge nodes, and import synthetic studies."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--no-studies", action="store_true", help="only the network and its people"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        region = seed_network()
        self.stdout.write(f"demo region {region.code}: {len(DEMO_USERS)} demo accounts")
        if not options["no_studies"]:
            imported = seed_studies(log=self.stdout.write)
            self.stdout.write(f"demo studies imported: {imported}")
