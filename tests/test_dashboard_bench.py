"""The dashboard benchmark runs end to end at a tiny size and prints every view it times.

Not a timed test: it checks that every endpoint of every view was measured and
reported, with the cache off and then on, never how fast. The benchmark makes
its own database (``rc_dashbench_<pid>`` on DATABASE_URL's server) and daphne,
and removes them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.dashboard_bench import ENDPOINTS, views

REPO = Path(__file__).resolve().parent.parent

NUMBER = r"\d+(?:\.\d+)?"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def bench_output() -> str:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "dashboard_bench.py"),
            "--studies",
            "2000",
            "--requests",
            "2",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + "\n" + result.stderr[-6000:]
    return result.stdout


def test_it_times_every_endpoint_of_every_view(bench_output: str) -> None:
    from datetime import date

    labels = list(views(date(2026, 1, 1), "county", "clinic"))
    for label in labels:
        for endpoint in [*ENDPOINTS, "page"]:
            line = rf"^{re.escape(f'{endpoint} ({label})')}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}$"
            assert re.search(line, bench_output, re.MULTILINE), (endpoint, label)


def test_it_reports_the_rollup_refresh_and_both_worst_figures(bench_output: str) -> None:
    assert re.search(rf"^rollup_refresh\(since=None\): {NUMBER} s$", bench_output, re.M)
    assert re.search(rf"^worst p95, cache off: {NUMBER} ms", bench_output, re.M)
    assert re.search(rf"^worst p95, cache on .*: {NUMBER} ms$", bench_output, re.M)
