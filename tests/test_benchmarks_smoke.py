"""The archive benchmark runs end to end at a tiny size and prints its ratio lines.

Not a timed test: it checks that every measure was taken and reported, never
how fast. The benchmark starts its own gunicorn, Orthanc and database
(``rc_bench_<pid>`` on DATABASE_URL's server), and removes them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NUMBER = r"\d+(?:\.\d+)?"

pytestmark = [pytest.mark.orthanc, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def bench_output() -> str:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "archive_bench.py"), "--quick"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + "\n" + result.stderr[-6000:]
    return result.stdout


def summary(output: str) -> list[str]:
    """Return the final block: the lines after the last blank line."""
    return output.strip().split("\n\n")[-1].splitlines()


def test_it_prints_an_ingest_ratio_per_configuration(bench_output: str) -> None:
    lines = [line for line in summary(bench_output) if line.startswith("ingest ")]

    assert [line.split(":")[0] for line in lines] == [
        "ingest 1 client",
        "ingest 4 clients",
        "ingest 1 client batched 25",
        "ingest 4 clients batched 25",
    ]
    for line in lines:
        assert re.search(
            rf"hub {NUMBER} inst/s, orthanc {NUMBER} inst/s.*, ratio {NUMBER}", line
        ), line


def test_it_prints_where_the_cpu_of_each_ingest_went(bench_output: str) -> None:
    lines = [line for line in summary(bench_output) if line.startswith("cpu per ingested")]

    assert [line.split(":")[0].removeprefix("cpu per ingested instance, ") for line in lines] == [
        "orthanc, 1 client(s), 1 per request",
        "hub, 1 client(s), 1 per request",
        "orthanc, 4 client(s), 1 per request",
        "hub, 4 client(s), 1 per request",
        "hub, 1 client(s), 25 per request",
        "hub, 4 client(s), 25 per request",
    ]
    for line in lines:
        assert re.search(rf"server {NUMBER} ms, postgres {NUMBER} ms, clients {NUMBER} ms", line)


def test_it_prints_the_qido_p95_of_both(bench_output: str) -> None:
    (line,) = [line for line in summary(bench_output) if line.startswith("qido ")]

    assert "with 1000 instances indexed (100 studies)" in line
    assert re.search(rf"hub {NUMBER} ms \(p50 {NUMBER} ms", line), line
    assert re.search(rf"orthanc {NUMBER} ms on the \d+ studies it holds", line), line


def test_it_prints_the_wado_ratio(bench_output: str) -> None:
    (line,) = [line for line in summary(bench_output) if line.startswith("wado ")]

    assert re.search(
        rf"of 10 slices \({NUMBER} MB\): hub {NUMBER} MB/s, orthanc {NUMBER} MB/s, "
        rf"ratio {NUMBER}",
        line,
    ), line


def test_it_prints_the_peak_memory_of_one_big_stow(bench_output: str) -> None:
    (line,) = [line for line in summary(bench_output) if line.startswith("stow ")]

    assert re.search(
        rf"stow 0\.02 GB in one request \(\d+ instances\): hub peak memory \+{NUMBER} MB", line
    ), line


def test_it_measured_everything(bench_output: str) -> None:
    assert "not measured" not in bench_output
    assert "n/a" not in "\n".join(summary(bench_output))
