"""Archive benchmark: the hub and an Orthanc 1.10 side by side on this machine.

    .venv/bin/python benchmarks/archive_bench.py [--slices 400] [--qido-instances 100000]
                                                 [--stow-gb 1] [--quick]

Both servers run here, on 127.0.0.1, at the same durability (every object
fsync'ed; the hub's index in PostgreSQL), and get the same synthetic CT. It
prints a table and, last, one line per measure with the hub/Orthanc ratio.
Nothing here fails on a slow machine: it measures and reports. See README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from benchmarks import hub as hubs
from benchmarks.data import (
    CtSeries,
    Variant,
    copies,
    generated_body,
    make_variant,
    new_boundary,
    stream_body,
    write_ct,
)
from benchmarks.orthanc import OrthancServer, start_orthanc

DICOM_JSON = "application/dicom+json"
MULTIPART_DICOM = 'multipart/related; type="application/dicom"'
QUICK = {"slices": 10, "qido_instances": 1000, "stow_gb": 0.02, "qido_requests": 40, "wado_runs": 1}
QIDO_QUERIES = [
    {"PatientName": "王*"},
    {"StudyDate": "20240101-20240630"},
    {"ModalitiesInStudy": "CT"},
    {"PatientName": "李*", "StudyDate": "20230101-20231231"},
    {"StudyDate": "20250101-", "ModalitiesInStudy": "CT"},
    {"PatientName": "张*", "ModalitiesInStudy": "MR"},
    {"StudyDate": "20240301-20240331", "ModalitiesInStudy": "DX"},
    {"PatientName": "陈*", "StudyDate": "20230601-20251231", "ModalitiesInStudy": "CT"},
]
WARM_UP = 10  # QIDO requests not counted: first connections, first plans


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Results:
    ingest: dict[str, float] = field(default_factory=dict)  # "hub/1/1" -> inst/s
    qido: dict[str, dict[str, float]] = field(default_factory=dict)
    wado: dict[str, float] = field(default_factory=dict)  # MB/s
    stow: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    fill: dict[str, Any] = field(default_factory=dict)

    def qido_ms(self, server: str, key: str) -> float | None:
        figures = self.qido.get(server)
        return figures[key] if figures else None


# --- Clients -------------------------------------------------------------------


def stow_body_headers(boundary: str, token: str) -> dict[str, str]:
    return {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": DICOM_JSON,
        "Authorization": f"Bearer {token}",
    }


def run_clients(clients: int, jobs: Sequence[Callable[[requests.Session], None]]) -> float:
    """Run ``jobs`` on ``clients`` threads (one Session each); return the wall time."""
    lock = threading.Lock()
    pending = list(reversed(jobs))
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)

    def worker() -> None:
        with requests.Session() as session:
            start.wait()
            while True:
                with lock:
                    if not pending or errors:
                        return
                    job = pending.pop()
                try:
                    job(session)
                except BaseException as exc:  # reported by the caller
                    with lock:
                        errors.append(exc)
                    return

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return elapsed


def short(text: str, size: int = 200) -> str:
    """Return ``text`` on one line, cut to ``size`` characters, for a note."""
    return " ".join(text.split())[:size]


def hub_errors(hub: hubs.HubServer) -> str:
    """Return the last error lines of the hub's log (a 500 page says nothing)."""
    lines = hub.log_tail(200_000).splitlines()
    errors = [line for line in lines if "Error:" in line or "FATAL" in line]
    return " | ".join(short(line, 160) for line in errors[-2:])


def stow_failures(response: requests.Response) -> str:
    """Return the STOW response's status and its distinct failure comments."""
    try:
        failed = response.json().get("00081198", {}).get("Value", [])
        reasons = {str(item.get("00000902", {}).get("Value", ["?"])[0]) for item in failed}
    except ValueError:
        return f"{response.status_code}: {short(response.text)}"
    return f"{response.status_code}, {len(failed)} refused: {'; '.join(sorted(reasons))}"


def hub_stow_job(
    url: str, token: str, payloads: Sequence[bytes]
) -> Callable[[requests.Session], None]:
    def job(session: requests.Session) -> None:
        boundary = new_boundary()
        response = session.post(
            f"{url}/dicom-web/studies",
            data=stream_body(boundary, payloads),
            headers=stow_body_headers(boundary, token),
            timeout=600,
        )
        if response.status_code != 200:
            raise RuntimeError(f"hub STOW answered {stow_failures(response)}")
        stored = response.json().get("00081199", {}).get("Value", [])
        if len(stored) != len(payloads):
            raise RuntimeError(f"hub STOW stored {len(stored)} of {len(payloads)}")

    return job


def orthanc_post_job(orthanc: OrthancServer, payload: bytes) -> Callable[[requests.Session], None]:
    def job(session: requests.Session) -> None:
        response = session.post(
            f"{orthanc.url}/instances",
            data=payload,
            auth=orthanc.auth,
            headers={"Content-Type": "application/dicom"},
            timeout=600,
        )
        if response.status_code != 200 or response.json().get("Status") != "Success":
            raise RuntimeError(f"Orthanc answered {response.status_code}: {response.text[:500]}")

    return job


def batches(payloads: Sequence[bytes], size: int) -> list[Sequence[bytes]]:
    return [payloads[i : i + size] for i in range(0, len(payloads), size)]


# --- Measures ------------------------------------------------------------------


def measure_ingest(
    results: Results,
    hub: hubs.HubServer,
    orthanc: OrthancServer,
    ct: CtSeries,
    *,
    edge_token: str,
    batch: int,
) -> Variant:
    """Ingest a variant of the CT per configuration; return the one both servers hold."""
    warm = make_variant(ct, 99)
    run_clients(1, [hub_stow_job(hub.url, edge_token, warm.payloads[:1])])
    run_clients(1, [orthanc_post_job(orthanc, warm.payloads[0])])
    shared = make_variant(ct, 1)
    plans: list[tuple[str, int, int, Variant]] = [
        ("orthanc", 1, 1, shared),
        ("hub", 1, 1, shared),
        ("orthanc", 4, 1, make_variant(ct, 2)),
        ("hub", 4, 1, make_variant(ct, 2)),
        ("hub", 1, batch, make_variant(ct, 3)),
        ("hub", 4, batch, make_variant(ct, 4)),
    ]
    for server, clients, per_request, variant in plans:
        if server == "hub":
            jobs = [
                hub_stow_job(hub.url, edge_token, group)
                for group in batches(variant.payloads, per_request)
            ]
        else:
            jobs = [orthanc_post_job(orthanc, payload) for payload in variant.payloads]
        try:
            elapsed = run_clients(clients, jobs)
        except (RuntimeError, ValueError, requests.RequestException) as exc:
            why = f"{short(str(exc), 120)}; hub log: {hub_errors(hub) or '-'}"
            results.notes.append(f"ingest {server} {clients}x{per_request}: not measured ({why})")
            log(f"ingest {server} {clients} client(s), {per_request} per request failed: {why}")
            continue
        rate = len(variant.payloads) / elapsed
        results.ingest[f"{server}/{clients}/{per_request}"] = rate
        log(
            f"ingest {server} {clients} client(s), {per_request} per request: "
            f"{len(variant.payloads)} in {elapsed:.1f} s = {rate:.1f} inst/s"
        )
    return shared


def latencies(
    session: requests.Session, url: str, count: int, **kwargs: Any
) -> tuple[list[float], int]:
    """Time ``count`` QIDO requests cycling through the queries; return ms and last matches."""
    timings: list[float] = []
    matches = 0
    for index in range(WARM_UP + count):
        query = {**QIDO_QUERIES[index % len(QIDO_QUERIES)], "limit": "50"}
        began = time.perf_counter()
        response = session.get(url, params=query, timeout=60, **kwargs)
        elapsed = (time.perf_counter() - began) * 1000
        if response.status_code not in (200, 204):
            raise RuntimeError(f"QIDO answered {response.status_code}: {short(response.text)}")
        matches = len(response.json()) if response.status_code == 200 else 0
        if index >= WARM_UP:
            timings.append(elapsed)
    return timings, matches


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def measure_qido(
    results: Results,
    hub: hubs.HubServer,
    orthanc: OrthancServer,
    *,
    reader_token: str,
    count: int,
) -> None:
    for name, url, kwargs in (
        (
            "hub",
            f"{hub.url}/dicom-web/studies",
            {"headers": {"Authorization": f"Bearer {reader_token}", "Accept": DICOM_JSON}},
        ),
        (
            "orthanc",
            f"{orthanc.url}/dicom-web/studies",
            {"headers": {"Accept": DICOM_JSON}, "auth": orthanc.auth},
        ),
    ):
        try:
            with requests.Session() as session:
                timings, _matches = latencies(session, url, count, **kwargs)
        except (RuntimeError, ValueError, requests.RequestException) as exc:
            results.notes.append(f"qido {name}: not measured ({exc})")
            log(f"qido {name}: not measured: {exc}")
            continue
        results.qido[name] = {
            "p50": statistics.median(timings),
            "p95": percentile(timings, 0.95),
            "max": max(timings),
            "requests": len(timings),
        }
        log(
            f"qido {name}: p50 {results.qido[name]['p50']:.1f} ms, p95 "
            f"{results.qido[name]['p95']:.1f} ms ({len(timings)} requests)"
        )


def fetch_series(session: requests.Session, url: str, **kwargs: Any) -> int:
    """GET a series as multipart, reading it in 1 MB pieces; return the bytes received."""
    received = 0
    with session.get(url, stream=True, timeout=600, **kwargs) as response:
        if response.status_code != 200:
            raise RuntimeError(f"WADO answered {response.status_code}: {short(response.text)}")
        if not response.headers.get("Content-Type", "").startswith("multipart/related"):
            raise RuntimeError(f"WADO answered {response.headers.get('Content-Type')!r}")
        for chunk in response.iter_content(1024 * 1024):
            received += len(chunk)
    return received


def measure_wado(
    results: Results,
    hub: hubs.HubServer,
    orthanc: OrthancServer,
    variant: Variant,
    *,
    reader_token: str,
    runs: int,
) -> None:
    path = f"/dicom-web/studies/{variant.study_instance_uid}/series/{variant.series_instance_uid}"
    for name, url, kwargs in (
        (
            "hub",
            hub.url + path,
            {"headers": {"Authorization": f"Bearer {reader_token}", "Accept": MULTIPART_DICOM}},
        ),
        (
            "orthanc",
            orthanc.url + path,
            {"headers": {"Accept": MULTIPART_DICOM}, "auth": orthanc.auth},
        ),
    ):
        rates = []
        try:
            with requests.Session() as session:
                for _run in range(runs):
                    began = time.perf_counter()
                    received = fetch_series(session, url, **kwargs)
                    elapsed = time.perf_counter() - began
                    if received < variant.size_bytes:
                        raise RuntimeError(
                            f"received {received} bytes, the series has {variant.size_bytes}"
                        )
                    rates.append(received / 1e6 / elapsed)
        except (RuntimeError, requests.RequestException) as exc:
            results.notes.append(f"wado {name}: not measured ({exc})")
            log(f"wado {name}: not measured: {exc}")
            continue
        results.wado[name] = statistics.median(rates)
        log(f"wado {name}: {', '.join(f'{r:.1f}' for r in rates)} MB/s")


def measure_big_stow(
    results: Results, hub: hubs.HubServer, ct: CtSeries, *, edge_token: str, gigabytes: float
) -> None:
    """Send ``gigabytes`` of instances in one STOW request; record the hub's peak memory rise."""
    template = ct.slices[0]
    size = template.path.stat().st_size
    count = max(1, round(gigabytes * 1e9 / size))
    boundary = new_boundary()
    body = generated_body(boundary, lambda: copies(template, ct, 50, count), count, size)
    # gunicorn's request may land on any worker: watch them all, report the largest rise.
    pids = hub.serving_pids()
    reset = all([hubs.reset_peak_rss(pid) for pid in pids])
    rss_before = {pid: hubs.proc_status_kb(pid, "VmRSS") for pid in pids}
    peak_before = {pid: hubs.proc_status_kb(pid, "VmHWM") for pid in pids}
    began = time.perf_counter()
    response = requests.post(
        f"{hub.url}/dicom-web/studies",
        data=body,
        headers=stow_body_headers(boundary, edge_token),
        timeout=3600,
    )
    elapsed = time.perf_counter() - began
    peak_after = {pid: hubs.proc_status_kb(pid, "VmHWM") for pid in pids}
    if response.status_code != 200:
        raise RuntimeError(f"hub STOW answered {stow_failures(response)}")
    stored = len(response.json().get("00081199", {}).get("Value", []))
    if stored != count:
        raise RuntimeError(f"hub STOW stored {stored} of {count}")
    base = rss_before if reset else peak_before
    rises = {pid: max(0, peak_after[pid] - base[pid]) for pid in pids}
    worker = max(pids, key=lambda pid: rises[pid])
    results.stow = {
        "bytes": len(body),
        "instances": count,
        "seconds": elapsed,
        "rss_before_mb": rss_before[worker] / 1024,
        "peak_rise_mb": rises[worker] / 1024,
        "peak_after_mb": peak_after[worker] / 1024,
        "reset": float(reset),
    }
    if not reset:
        results.notes.append(
            "stow: the kernel refused to reset VmHWM; the rise is over the earlier peak"
        )
    log(
        f"stow {len(body) / 1e9:.2f} GB, {count} instances in {elapsed:.1f} s: "
        f"peak RSS {rss_before[worker] / 1024:.0f} -> {peak_after[worker] / 1024:.0f} MB "
        f"(pid {worker} of {pids})"
    )


# --- Report --------------------------------------------------------------------


def ratio(hub: float | None, orthanc: float | None) -> str:
    if not hub or not orthanc:
        return "n/a"
    return f"{hub / orthanc:.2f}"


def fmt(value: float | None, unit: str) -> str:
    return "n/a" if value is None else f"{value:.1f} {unit}"


def summary_lines(results: Results, args: argparse.Namespace, series_mb: float) -> list[str]:
    lines = []
    single = {c: results.ingest.get(f"orthanc/{c}/1") for c in (1, 4)}
    for clients in (1, 4):
        label = "1 client" if clients == 1 else f"{clients} clients"
        hub = results.ingest.get(f"hub/{clients}/1")
        lines.append(
            f"ingest {label}: hub {fmt(hub, 'inst/s')}, orthanc {fmt(single[clients], 'inst/s')}, "
            f"ratio {ratio(hub, single[clients])} (target >= 1.0)"
        )
    for clients in (1, 4):
        label = "1 client" if clients == 1 else f"{clients} clients"
        hub = results.ingest.get(f"hub/{clients}/{args.batch}")
        lines.append(
            f"ingest {label} batched {args.batch}: hub {fmt(hub, 'inst/s')}, "
            f"orthanc {fmt(single[clients], 'inst/s')} (one per request), "
            f"ratio {ratio(hub, single[clients])} (target >= 1.0)"
        )
    fill = results.fill
    lines.append(
        f"qido p95 with {fill.get('instances', 0)} instances indexed "
        f"({fill.get('studies', 0)} studies): hub {fmt(results.qido_ms('hub', 'p95'), 'ms')} "
        f"(p50 {fmt(results.qido_ms('hub', 'p50'), 'ms')}, target <= 50 ms), orthanc "
        f"{fmt(results.qido_ms('orthanc', 'p95'), 'ms')} on the {fill.get('orthanc_studies', '?')} "
        "studies it holds (reference only, not comparable)"
    )
    hub_w, orthanc_w = results.wado.get("hub"), results.wado.get("orthanc")
    lines.append(
        f"wado series of {args.slices} slices ({series_mb:.1f} MB): "
        f"hub {fmt(hub_w, 'MB/s')}, orthanc {fmt(orthanc_w, 'MB/s')}, "
        f"ratio {ratio(hub_w, orthanc_w)} (target >= 1.0)"
    )
    stow = results.stow
    if stow:
        lines.append(
            f"stow {stow['bytes'] / 1e9:.2f} GB in one request "
            f"({int(stow['instances'])} instances): "
            f"hub peak memory +{stow['peak_rise_mb']:.0f} MB (target < 200 MB), "
            f"{stow['bytes'] / 1e6 / stow['seconds']:.1f} MB/s"
        )
    else:
        lines.append("stow: not measured")
    return lines


def table(results: Results, args: argparse.Namespace) -> list[str]:
    rows = [("measure", "hub", "orthanc", "hub/orthanc")]
    for clients in (1, 4):
        orthanc = results.ingest.get(f"orthanc/{clients}/1")
        for per_request in (1, args.batch):
            hub = results.ingest.get(f"hub/{clients}/{per_request}")
            rows.append(
                (
                    f"ingest inst/s, {clients} client(s), hub {per_request}/request",
                    fmt(hub, ""),
                    fmt(orthanc, ""),
                    ratio(hub, orthanc),
                )
            )
    for key in ("p50", "p95", "max"):
        rows.append(
            (
                f"qido {key} ms",
                fmt(results.qido_ms("hub", key), ""),
                fmt(results.qido_ms("orthanc", key), ""),
                "(not comparable)",
            )
        )
    rows.append(
        (
            "wado series MB/s",
            fmt(results.wado.get("hub"), ""),
            fmt(results.wado.get("orthanc"), ""),
            ratio(results.wado.get("hub"), results.wado.get("orthanc")),
        )
    )
    if results.stow:
        rows.append(
            ("stow 1 request, peak RSS rise MB", fmt(results.stow["peak_rise_mb"], ""), "", "")
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


# --- Main ----------------------------------------------------------------------


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
