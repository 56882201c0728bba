"""Measure 4: one big STOW-RS request, and how far it raises the hub's peak memory."""

from __future__ import annotations

import time

import requests

from benchmarks import hub as hubs
from benchmarks.archive_common import Results, log, stow_body_headers, stow_failures
from benchmarks.data import CtSeries, copies, generated_body, new_boundary


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
