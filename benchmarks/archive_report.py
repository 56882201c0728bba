"""The archive benchmark's report: a table, notes, and one summary line per measure."""

from __future__ import annotations

import argparse

from benchmarks.archive_common import Results


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
    for key, cpu in results.ingest_cpu.items():
        name, count, group = key.split("/")
        lines.append(
            f"cpu per ingested instance, {name}, {count} client(s), {group} per request: "
            f"server {cpu['server']:.2f} ms, postgres {cpu['postgres']:.2f} ms, "
            f"clients {cpu['client']:.2f} ms"
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
