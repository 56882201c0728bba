"""CPU milliseconds per ingested instance, in process: the STOW-RS path without HTTP.

    DATABASE_URL=postgres://…/<a migrated database> \\
        .venv/bin/python benchmarks/ingest_cpu.py --slices 100 [--threads 4] [--batch 1]
        [--profile out.pstats]

Each instance is POSTed to ``/dicom-web/studies`` through Django's test client
(the WSGI handler, middleware, authentication by an edge token, STOW-RS,
ingest, after-ingest hooks) — what a WSGI server would run, minus the socket.
The archive is a local folder in a temporary directory (fsync as in
production). It prints the process CPU time and the wall time per instance,
and the SQL statements per request (COMMITs not included), so a change to the ingest
path can be judged in seconds instead of by the full benchmark
(``benchmarks/archive_bench.py``). Rows it creates are left in the database
(a fresh region each run, so runs never collide).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_TMP = Path(tempfile.mkdtemp(prefix="ingest-cpu-"))
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", secrets.token_hex(32))
os.environ.setdefault("VAR_DIR", str(_TMP / "var"))
os.environ.setdefault("ARCHIVE_URL", f"file://{_TMP / 'archive'}")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "regional_cloud.settings")
(_TMP / "var" / "static").mkdir(parents=True, exist_ok=True)

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from benchmarks.data import make_variant, multipart_chunks, new_boundary, write_ct  # noqa: E402
from hospitals.models import Region, Tier  # noqa: E402
from hospitals.services import edge_node_create, institution_create  # noqa: E402


class StatementCounter:
    """Count SQL statements on every connection (``execute_wrapper``)."""

    def __init__(self) -> None:
        self.statements = 0
        self._lock = threading.Lock()

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        with self._lock:
            self.statements += 1
        return execute(sql, params, many, context)


def make_sender() -> str:
    """Create a region, a county hospital and its edge node; return the edge token."""
    suffix = secrets.token_hex(4)
    region = Region.objects.create(code=f"cpu-{suffix}", name="CPU bench")
    county = institution_create(
        region=region,
        code=f"cpu-county-{suffix}",
        name="CPU bench county",
        tier=Tier.COUNTY_HOSPITAL,
        grade="2",
    )
    return str(edge_node_create(institution=county, name=f"cpu-edge-{suffix}").token)


def post(client: Client, token: str, payloads: list[bytes]) -> None:
    boundary = new_boundary()
    body = b"".join(multipart_chunks(boundary, payloads))
    response = client.post(
        "/dicom-web/studies",
        data=body,
        content_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    if response.status_code != 200:
        raise SystemExit(f"STOW answered {response.status_code}: {response.content[:300]!r}")


def send(token: str, payloads: list[bytes], batch: int) -> None:
    client = Client()
    for start in range(0, len(payloads), batch):
        post(client, token, payloads[start : start + batch])
    connection.close()


def warm_up(token: str, payloads: list[bytes]) -> None:
    """Send a few instances first: imports, the first connection, Django's caches."""
    client = Client()
    for payload in payloads:
        post(client, token, [payload])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="clients, one thread each")
    parser.add_argument("--batch", type=int, default=1, help="instances per STOW request")
    parser.add_argument("--profile", help="write a cProfile of the timed part (1 thread)")
    args = parser.parse_args()

    token = make_sender()
    series = write_ct(_TMP / "ct", slices=args.slices)
    number = secrets.randbelow(9_000_000) + 1
    warm, timed = make_variant(series, number), make_variant(series, number + 1)
    warm_up(token, warm.payloads[:5])
    # As a gunicorn worker does once it has loaded the application
    # (regional_cloud/gunicorn.conf.py, post_worker_init).
    gc.collect()
    gc.freeze()

    counter = StatementCounter()
    shares = [timed.payloads[i :: args.threads] for i in range(args.threads)]
    profiler = cProfile.Profile() if args.profile and args.threads == 1 else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with connection.execute_wrapper(counter):
        if profiler is not None:
            profiler.enable()
        if args.threads == 1:
            send(token, shares[0], args.batch)
        else:
            workers = [
                threading.Thread(target=_with_counter, args=(counter, token, share, args.batch))
                for share in shares
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        if profiler is not None:
            profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if profiler is not None:
        profiler.dump_stats(args.profile)
    n = len(timed.payloads)
    requests = sum((len(s) + args.batch - 1) // args.batch for s in shares)
    print(
        f"{n} instances, {args.threads} thread(s), {args.batch} per request: "
        f"CPU {cpu * 1000 / n:.1f} ms/instance, wall {wall * 1000 / n:.1f} ms/instance "
        f"({n / wall:.1f} inst/s), {counter.statements / requests:.1f} SQL statements/request"
    )


def _with_counter(counter: StatementCounter, token: str, payloads: list[bytes], batch: int) -> None:
    # execute_wrapper is per connection, and each thread has its own.
    with connection.execute_wrapper(counter):
        send(token, payloads, batch)


if __name__ == "__main__":
    main()
