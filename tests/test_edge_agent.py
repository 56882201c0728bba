"""The edge agent's guarantees: the cursor moves only after the hub confirmed, it backs
off while the hub is away, repeats are harmless, and retention deletes only what the hub
holds. A real Orthanc every time; the hub is the live test server, a closed port, or a
tiny stand-in that answers 503 (the one thing the real hub should not be made to do)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pydicom
import pytest

from hospitals.models import Role
from hospitals.services import IssuedEdgeToken, edge_node_create
from regional_cloud.models import AuditEvent
from studies.archive import get_store
from studies.edge.agent import EdgeAgent, GaveUp, run_agent
from studies.edge.config import ConfigError, config_from_options
from studies.edge.state import AgentState, Confirmation, load_state, save_state
from studies.ingest import ReceivedFile, Sender, instances_ingest
from studies.models import EdgeStudy, Instance, Study
from tests.edge_helpers import (
    agent_config,
    closed_port_url,
    last_change,
    upload_ct,
    wait_stable,
)
from tests.factories import make_user
from tests.fixtures.archive import file_archive  # noqa: F401 - fixture
from tests.fixtures.orthanc import Orthanc

pytestmark = [pytest.mark.orthanc, pytest.mark.timeout(240)]
live = pytest.mark.usefixtures("transactional_db", "file_archive")


@pytest.fixture
def edge(network: dict[str, Any]) -> IssuedEdgeToken:
    return edge_node_create(institution=network["clinic"], name="PACS-1")


@pytest.fixture
def stable_study(orthanc_factory: Callable[..., Orthanc]) -> tuple[Orthanc, Any]:
    orthanc = orthanc_factory()
    study = upload_ct(orthanc, slices=5)
    wait_stable(orthanc, study.orthanc_id)
    return orthanc, study


class Sleeps(list[float]):
    """A sleep that only records: the test's own sense of time."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def ingest_bytes(files: list[bytes], sender: Sender) -> Any:
    received = [
        ReceivedFile(io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest())
        for data in files
    ]
    return instances_ingest(files=received, sender=sender)


# --- The hub is away -------------------------------------------------------------------


@live
def test_it_keeps_the_cursor_while_the_hub_is_unreachable_and_backs_off(
    stable_study: tuple[Orthanc, Any], edge: IssuedEdgeToken, live_hub: str, tmp_path: Path
):
    orthanc, study = stable_study
    state_file = tmp_path / "state.json"
    sleeps = Sleeps()
    down = agent_config(
        orthanc,
        closed_port_url(),
        edge.token,
        state_file,
        max_retries=6,
        retry_initial=1.0,
        retry_max=8.0,
    )

    with pytest.raises(GaveUp):
        run_agent(down, once=True, sleep=sleeps)

    assert sleeps == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # doubling, capped
    assert load_state(state_file).cursor == 0
    assert not Study.objects.exists()

    # The hub is back: the same agent state picks up where it was.
    report = run_agent(agent_config(orthanc, live_hub, edge.token, state_file), once=True)

    assert report.confirmed == [study.study_instance_uid]
    assert load_state(state_file).cursor == last_change(orthanc)
    assert Study.objects.get().number_of_instances == 5


class StandInHub:
    """A hub that is up but failing: 503 for STOW-RS, 200 for ledger and heartbeat."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                payload = json.loads(body) if self.path.startswith("/api/") else None
                hub.requests.append((self.path, self.headers.get("Authorization", ""), payload))
                if self.path.startswith("/dicom-web/"):
                    self._answer(503, b'{"error": "archive unavailable"}')
                elif self.path == "/api/edge-nodes/ledger/":
                    self._answer(200, b"[]")
                else:
                    self._answer(200, b"{}")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self) -> list[str]:
        return [path for path, _auth, _payload in self.requests]


@pytest.fixture
def failing_hub() -> Iterator[StandInHub]:
    hub = StandInHub()
    yield hub
    hub.server.shutdown()
    hub.server.server_close()


def test_it_keeps_the_cursor_on_server_errors_and_reports_the_backlog(
    stable_study: tuple[Orthanc, Any], failing_hub: StandInHub, tmp_path: Path
):
    orthanc, study = stable_study
    state_file = tmp_path / "state.json"
    sleeps = Sleeps()
    an_hour_later = datetime.now(UTC) + timedelta(hours=1)
    config = agent_config(
        orthanc, failing_hub.url, "edge_test-token", state_file, max_retries=3, batch_size=50
    )

    with pytest.raises(GaveUp):
        run_agent(config, once=True, sleep=sleeps, clock=lambda: an_hour_later)

    stow = f"/dicom-web/studies/{study.study_instance_uid}"
    assert failing_hub.paths().count(stow) == 4  # the first try and three retries
    assert len(sleeps) == 3
    assert load_state(state_file).cursor == 0
    assert {auth for _path, auth, _payload in failing_hub.requests} == {"Bearer edge_test-token"}
    heartbeats = [p for path, _a, p in failing_hub.requests if path.endswith("/heartbeat/")]
    assert heartbeats, "a heartbeat is due while the push keeps failing"
    assert heartbeats[0]["backlog"] == 1
    assert 3500 <= heartbeats[0]["lag_seconds"] <= 3700


# --- Repeats and refusals --------------------------------------------------------------


@live
def test_it_repeats_a_push_after_a_crash_before_the_cursor_was_saved(
    orthanc_factory: Callable[..., Orthanc], edge: IssuedEdgeToken, live_hub: str, tmp_path: Path
):
    orthanc = orthanc_factory()
    first = upload_ct(orthanc, slices=4, seed=4)
    wait_stable(orthanc, first.orthanc_id)
    state_file = tmp_path / "state.json"
    config = agent_config(orthanc, live_hub, edge.token, state_file)
    run_agent(config, once=True)
    second = upload_ct(orthanc, slices=6, seed=5)
    wait_stable(orthanc, second.orthanc_id)
    before = state_file.read_bytes()

    pushed = run_agent(config, once=True)
    # The crash: the hub stored the study, the cursor file never got the news.
    state_file.write_bytes(before)
    repeated = run_agent(config, once=True)

    assert pushed.confirmed == repeated.confirmed == [second.study_instance_uid]
    assert load_state(state_file).cursor == last_change(orthanc)
    assert Instance.objects.count() == 10
    assert Study.objects.get(study_instance_uid=second.study_instance_uid).number_of_instances == 6
    assert not AuditEvent.objects.filter(action="instance.duplicate_conflict").exists()
    assert EdgeStudy.objects.filter(state=EdgeStudy.State.CONFIRMED).count() == 2


@live
def test_it_reports_a_conflict_to_the_ledger_and_does_not_retry_it(
    stable_study: tuple[Orthanc, Any],
    edge: IssuedEdgeToken,
    network: dict[str, Any],
    live_hub: str,
    tmp_path: Path,
):
    orthanc, study = stable_study
    # The hub already holds one of the study's SOP Instance UIDs with other bytes.
    sop_uid, original = next(iter(study.files.items()))
    ds = pydicom.dcmread(io.BytesIO(original))
    ds.SeriesDescription = "another object under the same UID"
    other = io.BytesIO()
    ds.save_as(other, enforce_file_format=True)
    sender = Sender(user=edge.edge_node.service_user, institution=network["clinic"])
    assert not ingest_bytes([other.getvalue()], sender).refused
    state_file = tmp_path / "state.json"
    config = agent_config(orthanc, live_hub, edge.token, state_file)

    report = run_agent(config, once=True)

    assert report.failed == [study.study_instance_uid]
    assert report.confirmed == []
    assert load_state(state_file).cursor == last_change(orthanc)
    row = EdgeStudy.objects.get(study_instance_uid=study.study_instance_uid)
    assert (row.state, row.last_error) == (EdgeStudy.State.FAILED, "duplicate_sop_instance")
    assert (row.instances_at_edge, row.instances_confirmed) == (5, 5)  # 4 new + the other one
    with get_store().open(Instance.objects.get(sop_instance_uid=sop_uid).archive_key) as stored:
        assert stored.read() == other.getvalue()  # the stored object is never replaced

    again = run_agent(config, once=True)

    assert (again.confirmed, again.failed) == ([], [])


@live
def test_it_starts_over_when_orthancs_changes_restart(
    stable_study: tuple[Orthanc, Any], edge: IssuedEdgeToken, live_hub: str, tmp_path: Path
):
    orthanc, study = stable_study
    state_file = tmp_path / "state.json"
    save_state(state_file, AgentState(cursor=1_000_000))  # from an Orthanc since reinstalled

    report = run_agent(agent_config(orthanc, live_hub, edge.token, state_file), once=True)

    assert report.confirmed == [study.study_instance_uid]
    assert load_state(state_file).cursor == last_change(orthanc)


# --- Retention -------------------------------------------------------------------------


@live
def test_it_deletes_only_studies_the_hub_confirmed_n_days_ago(
    orthanc_factory: Callable[..., Orthanc],
    edge: IssuedEdgeToken,
    network: dict[str, Any],
    live_hub: str,
    tmp_path: Path,
):
    orthanc = orthanc_factory()
    kept = upload_ct(orthanc, slices=3, seed=6)  # confirmed, then deleted when old enough
    refused = upload_ct(orthanc, slices=3, seed=7)  # the hub holds it from another institution
    lost = upload_ct(orthanc, slices=3, seed=8)  # confirmed, then lost by the hub
    for study in (kept, refused, lost):
        wait_stable(orthanc, study.orthanc_id)
    doctor = make_user(institution=network["other_clinic"], role=Role.CLINIC_DOCTOR)
    other = Sender(user=doctor, institution=network["other_clinic"])
    assert not ingest_bytes(list(refused.files.values()), other).refused
    now = [datetime(2026, 1, 1, 8, 0, tzinfo=UTC)]
    start = now[0]
    state_file = tmp_path / "state.json"
    config = agent_config(orthanc, live_hub, edge.token, state_file, delete_after_days=30)

    def run() -> Any:
        return run_agent(config, once=True, clock=lambda: now[0])

    first = run()
    assert sorted(first.confirmed) == sorted([kept.study_instance_uid, lost.study_instance_uid])
    assert first.failed == [refused.study_instance_uid]
    assert set(load_state(state_file).confirmed) == {kept.orthanc_id, lost.orthanc_id}
    # The hub loses one study altogether: its rows and its objects.
    lost_study = Study.objects.get(study_instance_uid=lost.study_instance_uid)
    for key in lost_study.instances.values_list("archive_key", flat=True):
        get_store().delete(key)
    lost_study.delete()

    now[0] = start + timedelta(days=29)
    assert run().deleted == []

    now[0] = start + timedelta(days=31)
    late = run()

    assert late.deleted == [kept.study_instance_uid]
    assert not orthanc.client.studies.exists(kept.orthanc_id)
    assert orthanc.client.studies.exists(refused.orthanc_id)
    assert orthanc.client.studies.exists(lost.orthanc_id)
    # Not deleted but pushed again, and its wait starts over.
    assert Study.objects.get(study_instance_uid=lost.study_instance_uid).number_of_instances == 3
    assert load_state(state_file).confirmed == {
        lost.orthanc_id: Confirmation(lost.study_instance_uid, now[0])
    }


def test_it_deletes_nothing_without_retention(
    stable_study: tuple[Orthanc, Any], failing_hub: StandInHub, tmp_path: Path
):
    orthanc, study = stable_study
    state_file = tmp_path / "state.json"
    # Even a state that lists an old confirmation deletes nothing unless asked to.
    old = datetime(2000, 1, 1, tzinfo=UTC)
    save_state(
        state_file,
        AgentState(
            cursor=last_change(orthanc),
            confirmed={study.orthanc_id: Confirmation(study.study_instance_uid, old)},
        ),
    )

    report = EdgeAgent(agent_config(orthanc, failing_hub.url, "edge_x", state_file)).cycle()

    assert report.deleted == []
    assert orthanc.client.studies.exists(study.orthanc_id)
    assert not any(path.startswith("/api/edge-nodes/ledger/") for path in failing_hub.paths())


# --- The cursor file -------------------------------------------------------------------


def test_it_writes_the_state_file_atomically_and_durably(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    state_file = tmp_path / "agent" / "state.json"
    synced: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    save_state(state_file, AgentState(cursor=41))
    inode = state_file.stat().st_ino
    synced.clear()

    save_state(state_file, AgentState(cursor=42, confirmed={"a-b": Confirmation("1.2.3", when)}))

    assert load_state(state_file) == AgentState(
        cursor=42, confirmed={"a-b": Confirmation("1.2.3", when)}
    )
    assert state_file.stat().st_ino != inode  # a new file renamed over the old one
    assert len(synced) == 2  # the file, then its folder
    assert os.listdir(state_file.parent) == ["state.json"]


def test_it_leaves_the_old_state_whole_when_a_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    state_file = tmp_path / "state.json"
    save_state(state_file, AgentState(cursor=7))
    before = state_file.read_bytes()

    def full_disk(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space"):
        save_state(state_file, AgentState(cursor=8))

    assert state_file.read_bytes() == before
    assert os.listdir(tmp_path) == ["state.json"]  # no temporary file left behind


def test_it_starts_from_the_beginning_without_a_state_file(tmp_path: Path):
    assert load_state(tmp_path / "missing.json") == AgentState(cursor=0)


# --- Configuration ---------------------------------------------------------------------


def test_it_reads_a_config_file_with_options_winning_and_secrets_from_files(tmp_path: Path):
    token_file = tmp_path / "token"
    token_file.write_text("edge_secret-token\n")
    config_file = tmp_path / "agent.json"
    config_file.write_text(
        json.dumps(
            {
                "orthanc_url": "http://127.0.0.1:8042",
                "hub_url": "https://hub.example.org",
                "token_file": str(token_file),
                "state_file": str(tmp_path / "state.json"),
                "batch_size": 10,
                "delete_after_days": 30,
            }
        )
    )

    config = config_from_options({"config": str(config_file), "batch_size": 25, "once": True})

    assert config.token == "edge_secret-token"
    assert config.batch_size == 25
    assert config.delete_after_days == 30
    assert "secret" not in repr(config)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"orthanc_url": "x", "hub_url": "https://h", "token": "t", "statefile": "s"}, "unknown"),
        ({"orthanc_url": "x", "hub_url": "https://h", "token": "t"}, "state_file"),
        ({"orthanc_url": "x", "hub_url": "ftp://h", "token": "t", "state_file": "s"}, "http"),
        ({"orthanc_url": "x", "hub_url": "https://h", "state_file": "s"}, "token"),
    ],
)
def test_it_refuses_a_wrong_config(tmp_path: Path, content: dict[str, Any], message: str):
    config_file = tmp_path / "agent.json"
    config_file.write_text(json.dumps(content))

    with pytest.raises(ConfigError, match=message):
        config_from_options({"config": str(config_file)})


def test_it_runs_without_django(tmp_path: Path):
    # The edge needs no database or settings: python -m studies.edge works on its own.
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE"))}
    result = subprocess.run(
        [sys.executable, "-m", "studies.edge", "--help"],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "--delete-after-days" in result.stdout
