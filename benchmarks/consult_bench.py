"""Consultation benchmark: many live rooms through daphne and Redis on this machine.

    .venv/bin/python benchmarks/consult_bench.py [--rooms 50] [--participants 5]
                                                 [--rate 20] [--seconds 20]
                                                 [--servers 2] [--redis-db 13]

It creates a throwaway PostgreSQL database, migrates it, builds the rooms
through the services (one study, a requesting doctor and consultants per
room, everyone accepted), starts ``--servers`` daphne processes with REDIS_URL
set (Redis database ``--redis-db``, flushed before and after), and connects
every participant's WebSocket from this process (asyncio, ``websockets``),
room r to server r mod n. Each room then says ``--rate`` messages a second,
the participants taking turns, for ``--seconds``.

Every message carries its send time; every other participant of the room
records when it arrives (sender-to-receiver latency, one clock: both ends are
in this process). At the end each client asks the hub for a replay after the
last message it saw, as the browser does after a gap, and the benchmark counts
every expected delivery: live, recovered by replay, or lost. It prints the
figures, the CPU per message of the daphne processes and of this process's
clients (compare those between changes on a shared machine), and a JSON line.
Nothing fails on a slow machine: it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REDIS_DB = 13


def log(message: str) -> None:
    print(f"[consult-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- inside the hub's environment: build the rooms -----------------------------------------


def setup(rooms: int, participants: int) -> dict[str, Any]:
    """Build ``rooms`` consultations of ``participants`` people; return their sessions."""
    import django

    django.setup()
    import dataclasses
    import hashlib
    import io

    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore

    from hospitals.models import Region, Role, Tier
    from hospitals.services import institution_create, membership_grant
    from referrals.consultation.services import consultation_accept, consultation_request
    from studies.ingest import ReceivedFile, Sender, instances_ingest
    from studies.models import Study
    from studies.synthetic import ct_study, dataset_to_bytes, demo_patients

    region = Region.objects.create(code="consult-bench", name="会诊基准区")
    centre = institution_create(
        region=region, code="cb-centre", name="基准市中心医院", tier=Tier.REFERRAL_CENTRE, grade="3"
    )
    county = institution_create(
        region=region,
        code="cb-county",
        name="基准县人民医院",
        tier=Tier.COUNTY_HOSPITAL,
        grade="2",
        hub=centre,
    )
    clinic = institution_create(
        region=region, code="cb-clinic", name="基准镇卫生院", tier=Tier.TOWNSHIP_CLINIC, hub=county
    )
    users = get_user_model().objects

    def person(username: str, where: Any, role: str) -> Any:
        user = users.create_user(username=username, password=None)  # sessions only
        membership_grant(user=user, institution=where, role=role)
        return user

    def session_of(user: Any) -> str:
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        return str(store.session_key)

    template = demo_patients()[0]
    out = []
    for r in range(rooms):
        doctor = person(f"cb-doctor-{r}", clinic, Role.CLINIC_DOCTOR)
        consultants = [
            person(f"cb-expert-{r}-{i}", county if i % 2 else centre, Role.SPECIALIST)
            for i in range(participants - 1)
        ]
        patient = dataclasses.replace(template, patient_id=f"CB{r:05d}")
        data = dataset_to_bytes(next(ct_study(patient, slices=1, size=64, seed=1000 + r)))
        report = instances_ingest(
            files=[ReceivedFile(io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest())],
            sender=Sender(user=None, institution=clinic),
        )
        assert not report.refused, report.results
        study = Study.objects.get(patient__patient_id=f"CB{r:05d}")
        consultation = consultation_request(
            actor=doctor, studies=[study], consultants=consultants, question="基准会诊"
        )
        for consultant in consultants:
            consultation_accept(consultation=consultation, actor=consultant)
        people = [doctor, *consultants]
        out.append(
            {
                "uuid": str(consultation.uuid),
                "users": [u.pk for u in people],
                "sessions": [session_of(u) for u in people],
            }
        )
    return {"rooms": out}


def count_stored() -> dict[str, Any]:
    import django

    django.setup()
    from referrals.consultation.models import ConsultationMessage

    return {"text_messages": ConsultationMessage.objects.filter(kind="text").count()}


# --- the load: one asyncio process of WebSocket clients --------------------------------------


@dataclass
class Participant:
    room: int
    index: int
    user: int
    session: str
    socket: Any = None
    last_seq: int = 0
    seen: set[int] = field(default_factory=set)
    acked: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    ack_latencies: list[float] = field(default_factory=list)
    received_live: int = 0
    recovered: int = 0
    errors: int = 0
    replayed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Results:
    sent: int = 0
    acked: int = 0
    expected: int = 0
    live: int = 0
    recovered: int = 0
    lost: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)
    # CPU seconds used while the rooms talked (until the last acknowledgement).
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0


async def reader(p: Participant, sent_at: dict[str, float], measuring: list[bool]) -> None:
    async for raw in p.socket:
        now = time.perf_counter()
        data = orjson.loads(raw)
        kind = data["type"]
        if kind == "message":
            message = data["message"]
            seq = message["seq"]
            if seq in p.seen:
                continue
            p.seen.add(seq)
            if message["kind"] != "text" or message["author"]["id"] == p.user:
                continue
            if p.replayed.is_set() and measuring[0]:
                p.received_live += 1
                started = sent_at.get(message["client_msg_id"])
                if started is not None:
                    p.latencies.append((now - started) * 1000)
            elif not measuring[0]:
                p.recovered += 1
        elif kind == "ack":
            p.acked[data["client_msg_id"]] = data["seq"]
            started = sent_at.get(data["client_msg_id"])
            if started is not None and measuring[0]:
                p.ack_latencies.append((now - started) * 1000)
        elif kind == "replayed":
            p.replayed.set()
        elif kind == "error":
            p.errors += 1


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_load(
    urls: list[str],
    rooms: list[dict[str, Any]],
    *,
    rate: float,
    seconds: float,
    participants: int,
    server_pids: list[int],
) -> Results:
    """Run the rooms, room ``r`` on server ``r % len(urls)`` (as a balancer would spread them)."""
    import websockets
    from websockets.typing import Origin

    people: list[list[Participant]] = []
    for r, room in enumerate(rooms):
        people.append(
            [
                Participant(r, i, user, session)
                for i, (user, session) in enumerate(
                    zip(room["users"], room["sessions"], strict=True)
                )
            ]
        )
    sent_at: dict[str, float] = {}
    measuring = [True]
    readers = []

    async def connect(p: Participant, room: dict[str, Any]) -> None:
        host = urlsplit(urls[p.room % len(urls)]).netloc
        p.socket = await websockets.connect(
            f"ws://{host}/ws/consultations/{room['uuid']}/",
            origin=Origin(f"http://{host}"),
            additional_headers={"Cookie": f"sessionid={p.session}"},
            max_size=8 * 1024 * 1024,
            open_timeout=60,
        )
        readers.append(asyncio.create_task(reader(p, sent_at, measuring)))
        # Start from now: the transcript so far (the join events) is not this run's.
        await p.socket.send(json.dumps({"type": "replay", "after": 0}))

    started = time.perf_counter()
    for r, room in enumerate(rooms):
        await asyncio.gather(*(connect(p, room) for p in people[r]))
    await asyncio.wait_for(
        asyncio.gather(*(p.replayed.wait() for group in people for p in group)), 120
    )
    log(f"{sum(len(g) for g in people)} sockets open in {time.perf_counter() - started:.1f} s")
    await asyncio.sleep(1.0)  # the join events settle

    results = Results()
    interval = 1.0 / rate
    server_cpu = sum(process_cpu_seconds(pid) for pid in server_pids)
    client_cpu = time.process_time()

    async def talk(r: int) -> None:
        group = people[r]
        t0 = time.perf_counter() + (r / len(people)) * interval  # rooms out of phase
        n = 0
        while True:
            at = t0 + n * interval
            if at - t0 >= seconds:
                return
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sender = group[n % len(group)]
            client_id = f"b{r}-{n}"
            sent_at[client_id] = time.perf_counter()
            await sender.socket.send(
                orjson.dumps(
                    {"type": "say", "client_msg_id": client_id, "text": f"消息 {n}"}
                ).decode()
            )
            results.sent += 1
            n += 1

    log(f"{len(rooms)} rooms × {participants} people, {rate:g} msg/s per room, {seconds:g} s")
    await asyncio.gather(*(talk(r) for r in range(len(rooms))))
    # The hub may lag behind: wait (up to two minutes) until every message is acknowledged,
    # so "lost" below means "stored but never delivered", not "still in the queue".
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        if sum(len(p.acked) for group in people for p in group) >= results.sent:
            break
        await asyncio.sleep(0.2)
    results.server_cpu_s = sum(process_cpu_seconds(pid) for pid in server_pids) - server_cpu
    results.client_cpu_s = time.process_time() - client_cpu
    await asyncio.sleep(2.0)  # the last messages arrive
    measuring[0] = False

    # Fill any gap from the hub's store, as a browser does; what still misses is lost.
    for group in people:
        for p in group:
            p.replayed.clear()
            await p.socket.send(json.dumps({"type": "replay", "after": 0}))
    await asyncio.wait_for(
        asyncio.gather(*(p.replayed.wait() for group in people for p in group)), 120
    )
    await asyncio.sleep(0.5)

    for group in people:
        acked_ids = {cid for p in group for cid in p.acked}
        results.acked += len(acked_ids)
        for p in group:
            mine = {cid for cid in p.acked}
            results.expected += len(acked_ids - mine)
            results.live += p.received_live
            results.recovered += p.recovered
            results.latencies_ms += p.latencies
            results.ack_ms += p.ack_latencies
    results.lost = results.expected - results.live - results.recovered
    for group in people:
        for p in group:
            await p.socket.close()
    for task in readers:
        task.cancel()
    return results


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# --- orchestration ---------------------------------------------------------------------------


def redis_url_for(db: int) -> str:
    base = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--participants", type=int, default=5)
    parser.add_argument("--rate", type=float, default=20.0, help="messages a second per room")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--servers", type=int, default=1, help="daphne processes sharing the rooms (one per core)"
    )
    parser.add_argument(
        "--redis-db", type=int, default=REDIS_DB, help="Redis database, flushed before and after"
    )
    parser.add_argument("--setup-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup_only:
        print(json.dumps(setup(args.rooms, args.participants)))
        return 0
    if args.count_only:
        print(json.dumps(count_stored()))
        return 0

    import subprocess

    import redis

    from benchmarks import hub as hubs

    server = hubs.server_url(os.environ.get("DATABASE_URL"))
    name = f"rc_consult_bench_{os.getpid()}"
    redis_url = redis_url_for(args.redis_db)
    flush = redis.Redis.from_url(redis_url)
    flush.flushdb()
    with tempfile.TemporaryDirectory(prefix="consult-bench-") as tmp:
        directory = Path(tmp)
        database_url = hubs.create_database(server, name)
        servers: list[Any] = []
        try:
            env = hubs.hub_env(database_url, directory)
            env["REDIS_URL"] = redis_url
            log("migrating a throwaway database")
            hubs.manage(env, "migrate", "--noinput")
            log("building the rooms through the services")

            def script(*extra: str) -> dict[str, Any]:
                done = subprocess.run(  # noqa: S603 - our interpreter, this script
                    [sys.executable, __file__, *extra],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=1800,
                    check=False,
                )
                if done.returncode != 0:
                    raise RuntimeError(done.stderr[-4000:])
                answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
                return answer

            built = script(
                "--setup-only", "--rooms", str(args.rooms), "--participants", str(args.participants)
            )
            for _ in range(args.servers):
                servers.append(hubs.start_daphne(env, directory))
                log(f"daphne at {servers[-1].url} (pid {servers[-1].pid}), Redis {redis_url}")
            results = asyncio.run(
                run_load(
                    [server.url for server in servers],
                    built["rooms"],
                    rate=args.rate,
                    seconds=args.seconds,
                    participants=args.participants,
                    server_pids=[server.pid for server in servers],
                )
            )
            stored = script("--count-only")
        except BaseException:
            for hub in servers:
                text = hub.log_path.read_text(encoding="utf-8", errors="replace")
                first = max(0, text.find("Traceback"))
                log("daphne's log, from its first error:\n" + text[first : first + 6000])
            raise
        finally:
            for hub in servers:
                hub.stop()
            hubs.drop_database(server, name)
            flush.flushdb()
    lat = results.latencies_ms
    summary = {
        "servers": args.servers,
        "rooms": args.rooms,
        "participants": args.participants,
        "rate_per_room": args.rate,
        "seconds": args.seconds,
        "sent": results.sent,
        "acked": results.acked,
        "stored": stored["text_messages"],
        "expected_deliveries": results.expected,
        "delivered_live": results.live,
        "recovered_by_replay": results.recovered,
        "lost": results.lost,
        "latency_ms": {
            "p50": round(statistics.median(lat), 1) if lat else None,
            "p95": round(percentile(lat, 95), 1),
            "p99": round(percentile(lat, 99), 1),
            "max": round(max(lat), 1) if lat else None,
        },
        # Send to acknowledgement: the message is stored (committed) by then.
        # CPU per message said (a message is stored once and delivered participants - 1
        # times): all daphne processes, and this process's WebSocket clients.
        "cpu_ms_per_message": {
            "servers": round(results.server_cpu_s * 1000 / max(1, results.sent), 2),
            "clients": round(results.client_cpu_s * 1000 / max(1, results.sent), 2),
        },
        "stored_ms": {
            "p50": round(percentile(results.ack_ms, 50), 1),
            "p99": round(percentile(results.ack_ms, 99), 1),
        },
    }
    print(
        f"sent {results.sent}, acknowledged {results.acked}, stored {stored['text_messages']}\n"
        f"deliveries expected {results.expected}: live {results.live}, "
        f"recovered by replay {results.recovered}, lost {results.lost}\n"
        f"sender-to-receiver latency ms: p50 {summary['latency_ms']['p50']}, "
        f"p95 {summary['latency_ms']['p95']}, p99 {summary['latency_ms']['p99']}, "
        f"max {summary['latency_ms']['max']}\n"
        f"CPU per message: daphne {summary['cpu_ms_per_message']['servers']} ms, "
        f"clients {summary['cpu_ms_per_message']['clients']} ms; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
