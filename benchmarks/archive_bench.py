"""Archive benchmark: the hub and an Orthanc 1.10 side by side on this machine.

    .venv/bin/python benchmarks/archive_bench.py [--slices 400] [--qido-instances 100000]
                                                 [--stow-gb 1] [--quick]

Both servers run here, on 127.0.0.1, at the same durability (every object
fsync'ed; the hub's index in PostgreSQL), and get the same synthetic CT. It
prints a table and, last, one line per measure with the hub/Orthanc ratio.
Nothing here fails on a slow machine: it measures and reports. See README.md.
The hub's HTTP runs under gunicorn, as production serves it. One module per
measure: archive_ingest, archive_qido, archive_wado, archive_stow; the report
in archive_report.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from benchmarks import hub as hubs
from benchmarks.archive_common import Results, log
from benchmarks.archive_ingest import measure_ingest
from benchmarks.archive_qido import measure_qido
from benchmarks.archive_report import summary_lines, table
from benchmarks.archive_stow import measure_big_stow
from benchmarks.archive_wado import measure_wado
from benchmarks.data import write_ct
from benchmarks.orthanc import OrthancServer, start_orthanc

QUICK = {"slices": 10, "qido_instances": 1000, "stow_gb": 0.02, "qido_requests": 40, "wado_runs": 1}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--slices", type=int, default=400, help="CT slices to ingest (512x512)")
    parser.add_argument("--qido-instances", type=int, default=100_000, help="index rows for QIDO")
    parser.add_argument("--per-study", type=int, default=10, help="instances per indexed study")
    parser.add_argument("--qido-requests", type=int, default=200, help="QIDO requests timed")
    parser.add_argument("--stow-gb", type=float, default=1.0, help="size of the one big STOW")
    parser.add_argument("--batch", type=int, default=25, help="instances per batched STOW")
    parser.add_argument("--wado-runs", type=int, default=3, help="series retrievals (median)")
    parser.add_argument(
        "--database-server",
        default=None,
        help="postgres://user@host:port for the benchmark database "
        "(default: DATABASE_URL's server, else postgres://postgres@127.0.0.1:5432)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves it works")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    if args.slices < 1 or args.qido_instances < 1 or args.stow_gb <= 0 or args.batch < 1:
        parser.error("sizes must be positive")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="rc-bench-"))
    server = hubs.server_url(args.database_server or os.environ.get("DATABASE_URL"))
    database = f"rc_bench_{os.getpid()}"
    results = Results()
    load_before = os.getloadavg()[0]
    hub: hubs.HubServer | None = None
    orthanc: OrthancServer | None = None
    try:
        log(f"writing a {args.slices}-slice CT under {directory}")
        ct = write_ct(directory / "ct", slices=args.slices)
        log(f"creating database {database} and migrating")
        env = hubs.hub_env(hubs.create_database(server, database), directory / "hub")
        env["STOW_MAX_BYTES"] = str(max(4 * 1024**3, int(args.stow_gb * 1.1e9)))
        hubs.manage(env, "migrate", "--noinput")
        ids = hubs.helper(env, "setup")
        hub = hubs.start_gunicorn(env, directory / "hub")
        orthanc = start_orthanc(directory / "orthanc")
        log(f"hub {hub.url} (pid {hub.pid}), orthanc {orthanc.url}")

        shared = measure_ingest(
            results, hub, orthanc, ct, edge_token=ids["edge_token"], batch=args.batch
        )
        log(f"filling the index with {args.qido_instances} instances")
        results.fill = hubs.helper(
            env,
            "fill",
            "--instances",
            str(args.qido_instances),
            "--per-study",
            str(args.per_study),
            "--institution",
            str(ids["institution"]),
            "--other",
            str(ids["other"]),
        )
        log(f"filled: {results.fill}")
        results.fill["orthanc_studies"] = len(
            requests.get(f"{orthanc.url}/studies", auth=orthanc.auth, timeout=30).json()
        )
        measure_qido(
            results, hub, orthanc, reader_token=ids["reader_token"], count=args.qido_requests
        )
        measure_wado(
            results, hub, orthanc, shared, reader_token=ids["reader_token"], runs=args.wado_runs
        )
        orthanc.stop()  # the big STOW measures the hub alone
        try:
            measure_big_stow(results, hub, ct, edge_token=ids["edge_token"], gigabytes=args.stow_gb)
        except (RuntimeError, requests.RequestException) as exc:
            results.notes.append(f"stow: not measured ({exc})")
            log(f"stow: not measured: {exc}")
        series_mb = shared.size_bytes / 1e6
    except BaseException:
        # The servers' logs go with the temporary folder: show why before it does.
        if hub is not None:
            log(f"the hub's log ends:\n{hub.log_tail(6000)}")
        if orthanc is not None:
            log(f"Orthanc's log ends:\n{orthanc.log_tail(2000)}")
        raise
    finally:
        if hub is not None:
            hub.stop()
        if orthanc is not None:
            orthanc.stop()
        try:
            hubs.drop_database(server, database)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    print()
    print(
        f"machine: {os.cpu_count()} cores; 1-minute load average {load_before:.1f} at the "
        f"start, {os.getloadavg()[0]:.1f} at the end (anything else running skews the figures)"
    )
    print("\n".join(table(results, args)))
    for note in results.notes:
        print(f"note: {note}")
    print()
    print("\n".join(summary_lines(results, args, series_mb)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
