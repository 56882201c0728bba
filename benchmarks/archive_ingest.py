"""Measure 1: ingest over HTTP, hub STOW-RS against Orthanc POST /instances."""

from __future__ import annotations

import os

import requests

from benchmarks import hub as hubs
from benchmarks.archive_common import (
    Results,
    batches,
    hub_errors,
    hub_stow_job,
    log,
    orthanc_post_job,
    run_clients,
    short,
)
from benchmarks.data import CtSeries, Variant, make_variant
from benchmarks.orthanc import OrthancServer


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
        servers = hub.serving_pids() if server == "hub" else [orthanc.process.pid]
        before = _cpu(servers)
        try:
            elapsed = run_clients(clients, jobs)
        except (RuntimeError, ValueError, requests.RequestException) as exc:
            why = f"{short(str(exc), 120)}; hub log: {hub_errors(hub) or '-'}"
            results.notes.append(f"ingest {server} {clients}x{per_request}: not measured ({why})")
            log(f"ingest {server} {clients} client(s), {per_request} per request failed: {why}")
            continue
        rate = len(variant.payloads) / elapsed
        key = f"{server}/{clients}/{per_request}"
        results.ingest[key] = rate
        results.ingest_cpu[key] = {
            part: 1000 * (after - before[part]) / len(variant.payloads)
            for part, after in _cpu(servers).items()
        }
        log(
            f"ingest {server} {clients} client(s), {per_request} per request: "
            f"{len(variant.payloads)} in {elapsed:.1f} s = {rate:.1f} inst/s"
        )
    return shared


def _cpu(servers: list[int]) -> dict[str, float]:
    """CPU seconds so far: the server's processes, every PostgreSQL process (the
    index; Orthanc has none), and this process (the clients' threads)."""
    own = os.times()
    return {
        "server": hubs.cpu_seconds(servers),
        "postgres": hubs.cpu_seconds(hubs.processes_named("postgres")),
        "client": own.user + own.system,
    }
