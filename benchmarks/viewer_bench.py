"""Viewer benchmark: a 512×512 CT in the browser viewer, over loopback.

    .venv/bin/python benchmarks/viewer_bench.py [--slices 400] [--opens 5] [--quick]
                                                [--summary var/bench/viewer.md]

Starts the hub as production runs it (gunicorn for HTTP — ``--server daphne``
for the demo's single daphne —, DEBUG off, a throwaway
PostgreSQL database, the folder archive), stores a synthetic CT through the
one ingest pipeline, and drives Debian's Chromium with Playwright:

- first image: from opening /viewer/<study>/ to its first image drawn
  (``window.__viewerStats.firstImageMs``, measured from navigation start),
  the median of ``--opens`` opens, each in a fresh browser context (cold cache),
  two ways: from the reader's worklist, as a reader opens a study (the link
  "Images" in the same tab), and in a new tab (the navigation also waits for
  Chromium to start the page's renderer process, ~50 ms here);
  The page's inlined first-paint.js usually draws it, before the modules have
  run; the viewer's own first draw (overlays, tools) is reported beside it,
  with the requests made and bytes received before the first image, and each
  open's requests in the log (sent, first byte, end);
- stack load: until the whole stack is prefetched;
- scrolling the loaded stack: one slice per animation frame (what the screen
  shows), slices drawn back to back (the drawing cost alone), and wheel events
  at 125 per second (what a fast wheel gives).

It measures and reports; nothing fails on a slow machine. Targets (issue 4):
first image ≤ 300 ms, scrolling ≥ 30 images per second.

``seed`` is the part that runs inside the hub's environment (a subprocess).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import hub as hubs

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1600, "height": 1000}
TARGET_FIRST_MS = 300
TARGET_SCROLL = 30
BATCH = 50


def log(message: str) -> None:
    print(f"[viewer-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- inside the hub's environment ----------------------------------------------------


def seed(slices: int, size: int) -> dict[str, Any]:
    """Store a CT through ingest for a county hospital; return its UID and a reader's session."""
    import hashlib

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from hospitals.models import Region, Role, Tier
    from hospitals.services import institution_create, user_create_for_institution
    from studies.ingest import ReceivedFile, Sender, instances_ingest
    from studies.synthetic import ct_study, dataset_to_bytes, demo_patients

    region = Region.objects.create(code="viewer-bench", name="阅片基准区")
    county = institution_create(
        region=region, code="vb-county", name="基准县人民医院", tier=Tier.COUNTY_HOSPITAL, grade="2"
    )

    def person(username: str, name: str, role: str) -> Any:
        return user_create_for_institution(
            institution=county,
            username=username,
            full_name=name,
            password=secrets.token_urlsafe(24),
            role=role,
        ).user

    technician = person("vb-technician", "基准技师", Role.TECHNICIAN)
    reader = person("vb-reader", "基准读片医生", Role.SPECIALIST)
    sender = Sender(user=technician, institution=county)
    started = time.monotonic()
    batch: list[bytes] = []
    study_uids: set[str] = set()

    def flush() -> None:
        files = [
            ReceivedFile(io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest())
            for data in batch
        ]
        report = instances_ingest(files=files, sender=sender)
        if report.refused:
            raise RuntimeError(f"ingest refused: {[r.reason for r in report.refused][:3]}")
        study_uids.update(report.study_uids)
        batch.clear()

    for dataset in ct_study(demo_patients()[0], slices=slices, size=size):
        batch.append(dataset_to_bytes(dataset))
        if len(batch) == BATCH:
            flush()
    if batch:
        flush()
    # The reader's session, as a login would leave it (no password travels).
    session = SessionStore()
    session[SESSION_KEY] = str(reader.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = reader.get_session_auth_hash()
    session.create()
    return {
        "study_uid": study_uids.pop(),
        "cookie": settings.SESSION_COOKIE_NAME,
        "session": session.session_key,
        "ingest_seconds": round(time.monotonic() - started, 1),
    }


# --- the browser side ----------------------------------------------------------------

TIMINGS = """() => {
  const stats = window.__viewerStats;
  const navigation = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource");
  const end = (part) => {
    const entry = resources.find((r) => r.name.includes(part));
    return entry ? entry.responseEnd : null;
  };
  return {
    first: stats.firstImageMs,
    viewer: stats.viewerDrawnMs,
    // first-paint.js: the frame's bytes in hand, the page laid out, what drawing took.
    bytesIn: stats.firstBytesMs ?? null,
    laidOut: stats.laidOutMs ?? null,
    paintCost: stats.firstPaintCostMs ?? null,
    decoded: stats.firstFrameMs,
    html: navigation ? navigation.responseEnd : null,
    metadata: end("/metadata"),
    frame: end("/frames/"),
    requests: resources.filter((r) => r.startTime <= stats.firstImageMs).length,
    bytes: resources
      .filter((r) => r.responseEnd <= stats.firstImageMs)
      .reduce((sum, r) => sum + r.transferSize, navigation ? navigation.transferSize : 0),
    // Every request the page made before its first image was drawn, in the order sent.
    waterfall: resources
      .filter((r) => r.startTime <= stats.firstImageMs)
      .map((r) => ({
        name: r.name.replace(location.origin, "").replace(/[0-9.]{20,}/g, "…").slice(-48),
        start: r.startTime, sent: r.requestStart, first: r.responseStart, end: r.responseEnd,
        bytes: r.transferSize, body: r.decodedBodySize,
      })),
  };
}"""

WHEEL = """async ([seconds, interval]) => {
  const viewport = document.querySelector('[data-viewport="0"]');
  const box = viewport.getBoundingClientRect();
  const stats = window.__viewerStats;
  const before = stats.framesDrawn;
  const started = performance.now();
  let events = 0;
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      viewport.dispatchEvent(new WheelEvent("wheel", {
        deltaY: 100, clientX: box.x + box.width / 2, clientY: box.y + box.height / 2,
        bubbles: true, cancelable: true,
      }));
      events++;
      if (performance.now() - started >= seconds * 1000) { clearInterval(timer); resolve(); }
    }, interval);
  });
  await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  const ms = performance.now() - started;
  const drawn = stats.framesDrawn - before;
  return { events, drawn, ms, perSecond: drawn * 1000 / ms,
           slice: Number(viewport.dataset.drawnIndex) };
}"""


def log_waterfall(waterfall: list[dict[str, Any]]) -> None:
    """Log each request made before the first image: sent, first byte, end (ms), bytes."""
    for r in waterfall:
        log(
            f"  {r['start']:7.0f} {r['sent']:7.0f} {r['first']:7.0f} {r['end']:7.0f} "
            f"{r['bytes']:>8} {r['name']}"
        )


def new_page(browser: Any, base: str, seeded: dict[str, Any]) -> Any:
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    context.set_default_timeout(120_000)
    context.add_cookies([{"name": seeded["cookie"], "value": seeded["session"], "url": base}])
    return context.new_page()


def open_viewer(
    page: Any, base: str, study_uid: str, *, from_worklist: bool = False
) -> dict[str, Any]:
    if from_worklist:
        page.goto(f"{base}/worklist/")
        page.wait_for_load_state("load")
        page.locator(f'a[href="/viewer/{study_uid}/"]').first.click()
    else:
        page.goto(f"{base}/viewer/{study_uid}/")
    # The first image (first-paint.js, or the viewer if its modules were first), then
    # the viewer's own first draw, with overlays and tools.
    page.wait_for_function(
        "window.__viewerStats && window.__viewerStats.firstImageMs !== null"
        " && window.__viewerStats.viewerDrawnMs !== null"
    )
    timings: dict[str, Any] = page.evaluate(TIMINGS)
    return timings


def settle(base: str, hub: hubs.HubServer, timeout: float = 30.0) -> None:
    """Wait until the hub has finished what a closed page left running.

    A closed page's requests keep running on the server: its series metadata
    (~0.3 s of CPU for 400 slices), thumbnails and prefetched frames. The next
    cold open would share the two cores with them, which a reader opening a
    study does not (they open it after reading the last one). So: wait until
    the serving processes have used less than 10 ms of CPU in 0.3 s, then until
    a static file answers at once.
    """
    import urllib.request

    deadline = time.monotonic() + timeout
    pids = hub.serving_pids()
    before = hubs.cpu_seconds(pids)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = hubs.cpu_seconds(pids)
        busy, before = now - before, now
        if busy < 0.01:
            break
    while time.monotonic() < deadline:
        started = time.monotonic()
        with urllib.request.urlopen(f"{base}/static/viewer/strings.js", timeout=10) as answer:  # noqa: S310
            answer.read()
        if time.monotonic() - started < 0.03:
            return
        time.sleep(0.3)


def measure(
    hub: hubs.HubServer, seeded: dict[str, Any], *, opens: int, slices: int
) -> dict[str, Any]:
    base = hub.url
    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {"opens": [], "tab_opens": [], "load": [os.getloadavg()[0]]}
    chromium = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        try:
            # One open to warm the server (imports, first queries); not counted.
            page = new_page(browser, base, seeded)
            open_viewer(page, base, seeded["study_uid"])
            page.context.close()
            for n in range(opens):
                for key, from_worklist in (("opens", True), ("tab_opens", False)):
                    settle(base, hub)
                    page = new_page(browser, base, seeded)  # a fresh context: a cold cache
                    timings = open_viewer(
                        page, base, seeded["study_uid"], from_worklist=from_worklist
                    )
                    waterfall = timings.pop("waterfall")
                    how = "from the worklist" if from_worklist else "in a new tab"
                    log(f"open {n + 1} {how}: first image {timings['first']:.0f} ms {timings}")
                    log_waterfall(waterfall)
                    results[key].append(timings)
                    page.context.close()

            settle(base, hub)
            page = new_page(browser, base, seeded)
            open_viewer(page, base, seeded["study_uid"])
            loaded = page.evaluate(
                "async () => { const n = await window.__viewerBench.loaded(); "
                "return {images: n, ms: performance.now()}; }"
            )
            results["stack"] = loaded
            log(f"stack of {loaded['images']} loaded {loaded['ms']:.0f} ms after opening")
            results["paced"] = page.evaluate("n => window.__viewerBench.scroll(n)", slices)
            results["raw"] = page.evaluate("n => window.__viewerBench.drawRate(n)", slices)
            page.keyboard.press("Home")
            results["wheel"] = page.evaluate(WHEEL, [3, 8])
            log(f"scroll: {results['paced']}, raw: {results['raw']}, wheel: {results['wheel']}")
            page.context.close()
        finally:
            browser.close()
    results["load"].append(os.getloadavg()[0])
    return results


def summary(results: dict[str, Any], args: argparse.Namespace, seeded: dict[str, Any]) -> str:
    firsts = [o["first"] for o in results["opens"]]
    first = statistics.median(firsts)
    tab_firsts = [o["first"] for o in results["tab_opens"]]
    tab_first = statistics.median(tab_firsts)

    def median_of(key: str) -> float:
        values = [o[key] for o in results["opens"] if o.get(key) is not None]
        return statistics.median(values) if values else float("nan")

    paced, raw, wheel = results["paced"], results["raw"], results["wheel"]
    verdict_first = "meets" if first <= TARGET_FIRST_MS else "misses"
    verdict_tab = "meets" if tab_first <= TARGET_FIRST_MS else "misses"
    verdict_scroll = "meets" if paced["perSecond"] >= TARGET_SCROLL else "misses"
    lines = [
        f"### Viewer ({args.slices}-slice {args.size}×{args.size} CT, Chromium over loopback)",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        f"| first image drawn after opening the study from the worklist "
        f"(median of {len(firsts)} cold opens) "
        f"| {first:.0f} ms (min {min(firsts):.0f}, max {max(firsts):.0f}) "
        f"| ≤ {TARGET_FIRST_MS} ms ({verdict_first}) |",
        f"| … opened in a new tab instead (median of {len(tab_firsts)} cold opens) "
        f"| {tab_first:.0f} ms (min {min(tab_firsts):.0f}, max {max(tab_firsts):.0f}) "
        f"| ≤ {TARGET_FIRST_MS} ms ({verdict_tab}) |",
        f"| … of which: page HTML / first frame received / its metadata received "
        f"| {median_of('html'):.0f} / {median_of('frame'):.0f} / {median_of('metadata'):.0f} ms "
        "| |",
        f"| … first-paint.js: frame bytes in hand / page laid out / drawing took "
        f"| {median_of('bytesIn'):.0f} / {median_of('laidOut'):.0f} / "
        f"{median_of('paintCost'):.1f} ms | |",
        f"| the viewer's own first draw (overlays and tools live) "
        f"| {median_of('viewer'):.0f} ms | |",
        f"| requests before the first image / bytes received "
        f"| {median_of('requests'):.0f} / {median_of('bytes') / 1024:.0f} kB | |",
        f"| whole stack prefetched ({results['stack']['images']} frames, 5 at a time) "
        f"| {results['stack']['ms'] / 1000:.1f} s after opening | |",
        f"| scrolling the loaded stack, one slice per animation frame "
        f"| {paced['perSecond']:.0f} images/s | ≥ {TARGET_SCROLL} images/s ({verdict_scroll}) |",
        f"| scrolling by wheel events (125 events/s) | {wheel['perSecond']:.0f} images/s drawn | |",
        f"| drawing alone (window/level + draw, back to back) | {raw['perSecond']:.0f} images/s "
        f"({raw['ms'] / max(raw['images'], 1):.1f} ms each) | |",
        "",
        f"Machine: {os.cpu_count()} cores, load average {results['load'][0]:.1f} → "
        f"{results['load'][1]:.1f} during the run. "
        f"Ingest of the series for the benchmark: {seeded['ingest_seconds']} s. "
        f"Server: {args.server}. Run: `.venv/bin/python benchmarks/viewer_bench.py`.",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    seed_parser = sub.add_parser("seed", help="(internal) run inside the hub's environment")
    seed_parser.add_argument("--slices", type=int, required=True)
    seed_parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--slices", type=int, default=400, help="CT slices (default 400)")
    parser.add_argument("--size", type=int, default=512, help="rows and columns (default 512)")
    parser.add_argument("--opens", type=int, default=5, help="cold opens timed (median)")
    parser.add_argument("--quick", action="store_true", help="40 slices, 2 opens: proves it works")
    parser.add_argument(
        "--server",
        choices=["gunicorn", "daphne"],
        default="gunicorn",
        help="HTTP server: production's gunicorn (default) or the demo's daphne",
    )
    parser.add_argument(
        "--summary", type=Path, default=None, help="also write the summary (Markdown) here"
    )
    parser.add_argument(
        "--database-server",
        default=None,
        help="postgres://user@host:port (default: from DATABASE_URL, else 127.0.0.1:5432)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.slices, args.opens = 40, 2
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.command == "seed":
        print(json.dumps(seed(args.slices, args.size)))
        return 0
    directory = Path(tempfile.mkdtemp(prefix="rc-viewer-bench-"))
    server = hubs.server_url(args.database_server or os.environ.get("DATABASE_URL"))
    database = f"rc_viewer_bench_{os.getpid()}"
    hub: hubs.HubServer | None = None
    try:
        log(f"creating database {database} and migrating")
        env = hubs.hub_env(hubs.create_database(server, database), directory / "hub")
        hubs.manage(env, "migrate", "--noinput")
        log(f"storing a {args.slices}-slice {args.size}×{args.size} CT through ingest")
        seeded = run_seed(env, args)
        log(f"stored in {seeded['ingest_seconds']} s; starting {args.server}")
        if args.server == "daphne":
            hub = hubs.start_daphne(env, directory / "hub")
        else:
            hub = hubs.start_gunicorn(env, directory / "hub")
        log(f"hub {hub.url} (pid {hub.pid})")
        results = measure(hub, seeded, opens=args.opens, slices=args.slices)
    finally:
        if hub is not None:
            hub.stop()
        try:
            hubs.drop_database(server, database)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    text = summary(results, args, seeded)
    print()
    print(text)
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(text + "\n", encoding="utf-8")
        log(f"summary written to {args.summary}")
    return 0


def run_seed(env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    result = subprocess.run(  # noqa: S603 - our interpreter, this file
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "seed",
            "--slices",
            str(args.slices),
            "--size",
            str(args.size),
        ],
        cwd=hubs.REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"seed failed:\n{result.stdout}{result.stderr}")
    seeded: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return seeded


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
