"""Build the demo region. Running it again creates nothing twice."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from referrals.demo import seed_referrals
from regional_cloud.dashboard.demo import seed_activity
from regional_cloud.dashboard.rollups import rollup_refresh
from regional_cloud.demo.network import DEMO_USERS, seed_network, simulate_edge_heartbeats
from regional_cloud.demo.reports import seed_reports
from regional_cloud.demo.studies import seed_studies
from studies.reading.templates_seed import seed_report_templates


class Command(BaseCommand):
    help = (
        "Create the demo region, its people and edge nodes, import synthetic studies, "
        "referrals, recognition decisions and a few months of simulated activity."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--no-studies", action="store_true", help="only the network and its people"
        )
        parser.add_argument(
            "--months", type=int, default=4, help="months of simulated dashboard activity"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        region = seed_network()
        self.stdout.write(f"demo region {region.code}: {len(DEMO_USERS)} demo accounts")
        seed_report_templates()
        simulate_edge_heartbeats()
        if options["no_studies"]:
            return
        imported = seed_studies(log=self.stdout.write)
        self.stdout.write(f"demo studies imported: {imported}")
        self.stdout.write(f"demo reports signed: {seed_reports()}")
        seed_referrals(log=self.stdout.write)
        simulated = seed_activity(months=options["months"], region_code=region.code)
        self.stdout.write(f"simulated studies for the dashboards: {simulated}")
        rollup_refresh(since=None)
        self.stdout.write("dashboard rollups refreshed")
