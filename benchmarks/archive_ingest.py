"""Measure 1: ingest over HTTP, hub STOW-RS against Orthanc POST /instances."""

from __future__ import annotations

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
