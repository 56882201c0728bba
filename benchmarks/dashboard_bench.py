"""Dashboard benchmark: a region with 1,000,000 studies in the index, timed over real HTTP.

    .venv/bin/python benchmarks/dashboard_bench.py [--studies 1000000] [--requests 100]

It creates a throwaway PostgreSQL database (``rc_dashbench_<pid>``), migrates
it, builds a region of 100 institutions through the services, then writes
index rows only — patients, studies, series, reading tasks, final reports,
referrals, recognition decisions and audited cross-hospital reads — with
``INSERT … SELECT generate_series`` (no images, no Instance rows). It times
``rollup_refresh(since=None)``, starts the hub under daphne with a task
worker's settings (no refresh on read) and the response cache off, and sends
``--requests`` GETs to every dashboard endpoint and page as a bureau analyst,
for each view in ``VIEWS`` — the default 30 days, a year by week, by month
and by day, and the filters an analyst uses (a tier, a modality, both, one
institution, the drill-down page of one institution) — printing p50/p95 per
endpoint. Then it restarts the hub with the cache on and times the repeat of
the year by week: what a second analyst opening the same view gets. The
database is dropped at the end (``--keep`` keeps it).

Not a test: it prints figures. The goal is p95 ≤ 300 ms per endpoint.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.hub import (
    create_database,
    drop_database,
    hub_env,
    manage,
    server_url,
    start_daphne,
)

DAYS = 730
REQUESTS = 100
UID_ROOT = "1.2.826.0.1.3680043.8.498.88"  # pydicom's prefix; ".88" marks dashboard bench rows
ENDPOINTS = ["volume", "turnaround", "referrals", "recognition", "network"]


def build_region(clinics: int = 90, counties: int = 9) -> dict[str, Any]:
    """Create the region, its institutions and people through the services."""
    from hospitals.models import Region, Role, Tier
    from hospitals.services import institution_create
    from tests.factories import make_user

    region = Region.objects.create(code="dash-bench", name="基准市")
    centre = institution_create(
        region=region, code="b-centre", name="基准市影像中心", tier=Tier.REFERRAL_CENTRE, grade="3"
    )
    bureau = institution_create(
        region=region, code="b-bureau", name="基准市卫健委", tier=Tier.HEALTH_BUREAU, grade=""
    )
    county_list = [
        institution_create(
            region=region,
            code=f"b-county-{n}",
            name=f"基准{n}县人民医院",
            tier=Tier.COUNTY_HOSPITAL,
            grade="2",
            hub=centre,
        )
        for n in range(counties)
    ]
    for n in range(clinics):
        institution_create(
            region=region,
            code=f"b-clinic-{n}",
            name=f"基准{n}镇卫生院",
            tier=Tier.TOWNSHIP_CLINIC,
            grade="1",
            hub=county_list[n % counties],
        )
    for hospital in [centre, *county_list]:
        make_user(institution=hospital, role=Role.SPECIALIST, username=f"reader-{hospital.code}")
    analyst = make_user(institution=bureau, role=Role.BUREAU_ANALYST, username="bench-analyst")
    return {"region": region, "analyst": analyst}


SQL = [
    # Institutions that send studies, numbered 0..n-1, with their reading hospital and reader.
    """
    CREATE TEMP TABLE bench_inst AS
    SELECT i.id, row_number() OVER (ORDER BY i.id) - 1 AS rn,
           CASE WHEN i.tier = 'clinic' THEN i.hub_id ELSE i.id END AS reader_inst,
           i.hub_id
    FROM hospitals_institution i WHERE i.region_id = %(region)s AND i.tier <> 'bureau'
    """,
    """
    CREATE TEMP TABLE bench_reader AS
    SELECT m.institution_id, min(m.user_id) AS user_id FROM hospitals_membership m
    WHERE m.role = 'specialist' GROUP BY m.institution_id
    """,
    """
    INSERT INTO studies_patient (uuid, patient_id, patient_name, patient_sex, patient_birth_date,
        national_id_hash, link_method, created_at, issuer_id)
    SELECT gen_random_uuid(), 'B' || g, '', 'F', '', '', '', now(), bi.id
    FROM generate_series(0, %(patients)s - 1) g
    JOIN bench_inst bi ON bi.rn = g %% %(n_inst)s
    """,
    """
    CREATE TEMP TABLE bench_patient AS
    SELECT id, row_number() OVER (ORDER BY id) - 1 AS rn FROM studies_patient
    WHERE patient_id LIKE 'B%%'
    """,
    """
    INSERT INTO studies_study (uuid, study_instance_uid, accession_number, study_id, study_date,
        study_time, study_description, referring_physician_name, modalities_in_study,
        number_of_series, number_of_instances, size_bytes, received_at, updated_at, metadata,
        origin_id, patient_id)
    SELECT gen_random_uuid(), %(uid)s || '.' || g, '', '', '', '', '', '',
           m.modality, 1, m.instances, m.instances::bigint * m.bytes,
           t.at, t.at, '{}', bi.id, bp.id
    FROM generate_series(0, %(studies)s - 1) g
    JOIN bench_inst bi ON bi.rn = g %% %(n_inst)s
    JOIN bench_patient bp ON bp.rn = g %% %(patients)s
    -- g in the expression makes the lateral subquery run per row, not once
    CROSS JOIN LATERAL (SELECT now() - ((random() + 0 * g) * %(days)s) * interval '1 day' AS at) t
    CROSS JOIN LATERAL (
        SELECT (ARRAY['CT','DX','US','MR','MG','ECG'])[1 + (g %% 6)] AS modality,
               (ARRAY[220, 2, 20, 300, 4, 1])[1 + (g %% 6)] AS instances,
               (ARRAY[520000, 10000000, 300000, 260000, 30000000, 200000])[1 + (g %% 6)] AS bytes
    ) m
    """,
    """
    INSERT INTO studies_series (uuid, series_instance_uid, modality, series_number,
        series_description, body_part_examined, number_of_instances, size_bytes, metadata,
        study_id)
    SELECT gen_random_uuid(), s.study_instance_uid || '.1', s.modalities_in_study, 1, '', '',
           s.number_of_instances, s.size_bytes, '{}', s.id
    FROM studies_study s WHERE s.study_instance_uid LIKE %(uid_like)s
    """,
    # Seven studies in ten are read; the report comes 10 minutes to 3 days later.
    """
    INSERT INTO studies_readingtask (uuid, priority, status, routed_at, finalized_at,
        reading_institution_id, study_id)
    SELECT gen_random_uuid(), 'routine', 'final', s.received_at,
           s.received_at + (10 + random() * 4300) * interval '1 minute', bi.reader_inst, s.id
    FROM studies_study s JOIN bench_inst bi ON bi.id = s.origin_id
    WHERE s.study_instance_uid LIKE %(uid_like)s AND s.id %% 10 < 7
      AND bi.reader_inst IS NOT NULL
    """,
    """
    INSERT INTO studies_report (uuid, state, findings, impression, critical,
        critical_notified_at, critical_seen_at, created_at, updated_at, signed_at,
        content_sha256, signature, archived_sop_instance_uid, author_id, signed_by_id,
        study_id, task_id)
    SELECT gen_random_uuid(), 'final', '', '', t.id %% 50 = 0,
           CASE WHEN t.id %% 50 = 0 THEN t.finalized_at END,
           CASE WHEN t.id %% 50 = 0 THEN t.finalized_at + interval '20 minutes' END,
           t.routed_at, t.finalized_at, t.finalized_at, '', '', '', r.user_id, r.user_id,
           t.study_id, t.id
    FROM studies_readingtask t JOIN bench_reader r ON r.institution_id = t.reading_institution_id
    JOIN studies_study s ON s.id = t.study_id
    WHERE s.study_instance_uid LIKE %(uid_like)s AND t.finalized_at < now()
    """,
    # One study in twenty is referred up to its hub; most are accepted a few hours later.
    """
    INSERT INTO referrals_referral (uuid, direction, urgency, clinical_question, skip_reason,
        treatment_summary, follow_up_plan, state, rejection_reason, cancellation_reason,
        created_at, submitted_at, accepted_at, closed_at, created_by_id, from_institution_id,
        patient_id, to_institution_id)
    SELECT gen_random_uuid(), 'up', 'routine', '', '', '', '',
           CASE WHEN s.id %% 10 < 8 THEN 'accepted' ELSE 'rejected' END, '', '',
           s.received_at, s.received_at + interval '1 hour',
           CASE WHEN s.id %% 10 < 8 THEN s.received_at + interval '5 hours' END,
           CASE WHEN s.id %% 10 >= 8 THEN s.received_at + interval '3 hours' END,
           r.user_id, s.origin_id, s.patient_id, bi.hub_id
    FROM studies_study s JOIN bench_inst bi ON bi.id = s.origin_id
    JOIN bench_reader r ON r.institution_id = bi.hub_id
    WHERE s.study_instance_uid LIKE %(uid_like)s AND s.id %% 20 = 3 AND bi.hub_id IS NOT NULL
    """,
    """
    INSERT INTO referrals_recognitiondecision (uuid, decision, reasons, other_text, saving_yuan,
        evaluation, decided_at, decided_by_id, institution_id, referral_id, study_id)
    SELECT gen_random_uuid(),
           CASE WHEN f.id %% 5 = 0 THEN 'not_recognized' ELSE 'recognized' END, '[]', '',
           CASE WHEN f.id %% 5 = 0 THEN NULL ELSE 320 END, '{}',
           f.accepted_at + interval '30 minutes', f.created_by_id, f.to_institution_id, f.id,
           (SELECT rs.study_id FROM referrals_referral_studies rs WHERE rs.referral_id = f.id
            LIMIT 1)
    FROM referrals_referral f WHERE f.accepted_at IS NOT NULL
    """,
    """
    INSERT INTO referrals_referral_studies (referral_id, study_id)
    SELECT f.id, s.id FROM referrals_referral f
    JOIN studies_study s ON s.patient_id = f.patient_id AND s.received_at = f.created_at
    """,
    # The receiving hospital's reader opens the referred study: an audited cross read.
    """
    INSERT INTO regional_cloud_auditevent (occurred_at, actor_username, institution_name,
        action, object_type, object_id, patient_ref, study_uid, outcome, detail, actor_id)
    SELECT f.accepted_at + interval '10 minutes', '', '', 'study.view', 'study', '', '',
           s.study_instance_uid, 'success', '{}', f.created_by_id
    FROM referrals_referral f
    JOIN studies_study s ON s.patient_id = f.patient_id AND s.received_at = f.created_at
    WHERE f.accepted_at IS NOT NULL
    """,
]


def fill(region_id: int, studies: int) -> None:
    from django.db import connection

    n_inst_sql = "SELECT count(*) FROM hospitals_institution WHERE region_id = %s AND tier <> %s"
    with connection.cursor() as cursor:
        cursor.execute(n_inst_sql, [region_id, "bureau"])
        n_inst = cursor.fetchone()[0]
        params = {
            "region": region_id,
            "n_inst": n_inst,
            "patients": max(1, studies * 3 // 10),
            "studies": studies,
            "days": DAYS,
            "uid": UID_ROOT,
            "uid_like": UID_ROOT + ".%",
        }
        # The link table is filled before the decisions that read it.
        order = [*SQL[:9], SQL[10], SQL[9], SQL[11]]
        for statement in order:
            began = time.monotonic()
            cursor.execute(statement, params)
            first_line = " ".join(statement.split())[:70]
            print(f"  {cursor.rowcount:>9} rows {time.monotonic() - began:6.1f} s  {first_line}")
        cursor.execute("ANALYZE")


def session_cookie(user: Any) -> str:
    """Return a session cookie for ``user``, as the login page would set it."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def timed_gets(url: str, cookie: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        request = urllib.request.Request(url, headers={"Cookie": cookie})  # noqa: S310
        began = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{url}: {response.status}")
        times.append((time.perf_counter() - began) * 1000)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def views(today: date, county: str, clinic: str) -> dict[str, dict[str, str]]:
    """The views an analyst opens: label -> query parameters (``drill`` opens one
    institution's page as the drill-down link does, with the API asked for it)."""
    year = {"from": (today - timedelta(days=364)).isoformat(), "to": today.isoformat()}
    return {
        "30 days, daily": {},
        "year, weekly": {**year, "granularity": "week"},
        "year, monthly": {**year, "granularity": "month"},
        "year, daily": {**year, "granularity": "day"},
        "year, weekly, clinics": {**year, "granularity": "week", "tier": "clinic"},
        "year, weekly, CT": {**year, "granularity": "week", "modality": "CT"},
        "year, weekly, county CT": {
            **year,
            "granularity": "week",
            "tier": "county",
            "modality": "CT",
        },
        "year, weekly, one county": {**year, "granularity": "week", "institution": county},
        "year, weekly, drill clinic": {
            **year,
            "granularity": "week",
            "institution": clinic,
            "drill": clinic,
        },
    }


def paths(query: dict[str, str]) -> dict[str, str]:
    """Return endpoint -> path with its query string for one view."""
    params = {k: v for k, v in query.items() if k != "drill"}
    encoded = "?" + urllib.parse.urlencode(params) if params else ""
    page = f"/dashboard/institutions/{query['drill']}/" if "drill" in query else "/dashboard/"
    page_params = {k: v for k, v in params.items() if k != "institution"}
    page_query = "?" + urllib.parse.urlencode(page_params) if page_params else ""
    found = {name: f"/api/dashboard/{name}/{encoded}" for name in ENDPOINTS}
    found["page"] = page + page_query
    return found


def time_views(url: str, cookie: str, chosen: dict[str, dict[str, str]], requests: int) -> float:
    print(f"{'endpoint (view)':<48}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    worst = 0.0
    for label, query in chosen.items():
        for endpoint, path in paths(query).items():
            timed_gets(url + path, cookie, 3)  # warm the connection
            times = timed_gets(url + path, cookie, requests)
            p95 = percentile(times, 0.95)
            worst = max(worst, p95)
            print(
                f"{endpoint + ' (' + label + ')':<48}{statistics.median(times):9.1f}"
                f"{p95:9.1f}{max(times):9.1f}"
            )
    return worst


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=REQUESTS, help="GETs per endpoint and view")
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    args = parser.parse_args(argv)

    server = server_url(os.environ.get("DATABASE_URL"))
    name = f"rc_dashbench_{os.getpid()}"
    database_url = create_database(server, name)
    directory = Path(tempfile.mkdtemp(prefix="dashbench-"))
    env = hub_env(database_url, directory)
    env["SECRET_KEY"] = secrets.token_urlsafe(48)
    # As production runs, with a task worker keeping the rollups current: no refresh
    # inside a request (without a worker one request in five minutes would do it).
    env["CELERY_TASK_ALWAYS_EAGER"] = "0"
    hub = None
    try:
        print(f"database {name}: migrating (load average {load()})")
        manage(env, "migrate", "--noinput", timeout=600)
        os.environ.update(env)
        import django

        django.setup()
        from django.utils import timezone

        from hospitals.models import Institution
        from regional_cloud.dashboard.rollups import rollup_refresh

        made = build_region()
        print(f"writing {args.studies:,} studies' index rows")
        began = time.monotonic()
        fill(made["region"].pk, args.studies)
        print(f"index rows written in {time.monotonic() - began:.1f} s")

        began = time.monotonic()
        results = rollup_refresh(since=None)
        total = time.monotonic() - began
        for result in results:
            print(f"  rollup {result.table:<20} {result.rows:>8} rows {result.seconds:6.1f} s")
        print(f"rollup_refresh(since=None): {total:.1f} s")

        began = time.monotonic()
        rollup_refresh(since=timezone.localdate() - timedelta(days=1))
        print(f"rollup_refresh(today and yesterday): {time.monotonic() - began:.2f} s")

        cookie = session_cookie(made["analyst"])
        county = str(Institution.objects.get(code="b-county-0").uuid)
        clinic = str(Institution.objects.get(code="b-clinic-0").uuid)
        chosen = views(timezone.localdate(), county, clinic)

        hub = start_daphne({**env, "DASHBOARD_CACHE_SECONDS": "0"}, directory)
        print(
            f"\n{args.requests} GETs per endpoint and view through daphne ({hub.url}), as a "
            f"bureau analyst, response cache off (load average {load()})"
        )
        worst = time_views(hub.url, cookie, chosen, args.requests)
        hub.stop()

        hub = start_daphne({**env, "DASHBOARD_CACHE_SECONDS": "600"}, directory)
        print(f"\nthe same, response cache on (load average {load()})")
        cached = time_views(
            hub.url, cookie, {"year, weekly": chosen["year, weekly"]}, args.requests
        )
        print(f"\nload average at the end: {load()}")
        print(
            f"worst p95, cache off: {worst:.1f} ms ({'within' if worst <= 300 else 'OVER'} 300 ms)"
        )
        print(f"worst p95, cache on (a view opened again): {cached:.1f} ms")
    finally:
        if hub is not None:
            hub.stop()
        if not args.keep:
            from django.db import connections

            connections.close_all()
            drop_database(server, name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
