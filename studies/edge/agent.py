"""The edge agent: follow Orthanc's changes and push every stable study to the hub.

One cycle:

1. Read Orthanc's ``/changes`` from the saved cursor. For each StableStudy:
   report the study to the hub's ledger, push its instances with STOW-RS in
   batches, report again (the hub now counts what it holds), and only then
   move the cursor past that change and save it. A crash anywhere before the
   save repeats the study; the hub answers repeats idempotently.
2. While the hub is unreachable or answers 5xx, wait and try again (1 s,
   2 s, 4 s … capped), never moving the cursor. A study the hub refused for
   good (e.g. an instance UID it holds with other bytes, 0x0111) is reported
   to the ledger as failed and passed over: retrying would only be refused again.
3. With retention on, delete from Orthanc the studies the hub confirmed at
   least N days ago, after asking the hub's ledger once more that it holds
   every instance.
4. Send a heartbeat: the stable studies still waiting and the age of the oldest.

Logs carry Orthanc ids and Study Instance UIDs only, never patient data.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import Any, TypeVar

from orthanc_api_client import ChangeType, OrthancApiClient
from orthanc_api_client import exceptions as orthanc_errors

from studies.edge.config import AgentConfig
from studies.edge.hub_client import (
    HubClient,
    HubRefused,
    HubUnavailable,
    OutgoingInstance,
    SourceChanged,
)
from studies.edge.state import AgentState, Confirmation, load_state, save_state

logger = logging.getLogger("studies.edge")

T = TypeVar("T")
UID = re.compile(r"[0-9]+(\.[0-9]+)*")
BACKLOG_SCAN_PAGES = 10


def agent_version() -> str:
    try:
        return f"edge-agent/{metadata.version('regional-imaging-cloud')}"
    except metadata.PackageNotFoundError:
        return "edge-agent/dev"


class GaveUp(Exception):
    """An operation kept failing for ``max_retries`` attempts; the cursor did not move."""


@dataclass
class CycleReport:
    """What one cycle did; study UIDs only."""

    confirmed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    cursor: int = 0
    backlog: int = 0
    lag_seconds: int = 0


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _retryable(exc: BaseException) -> str | None:
    """Return a short code if ``exc`` is worth another attempt later, else None."""
    if isinstance(exc, HubUnavailable):
        return exc.code
    if isinstance(exc, SourceChanged):
        return "source_changed"
    if isinstance(exc, orthanc_errors.ConnectionError | orthanc_errors.TimeoutError):
        return "orthanc_unreachable"
    if isinstance(exc, orthanc_errors.HttpError) and (exc.http_status_code or 0) >= 500:
        return f"orthanc_http_{exc.http_status_code}"
    return None


class EdgeAgent:
    """Push an Orthanc's stable studies to the hub; see the module docstring.

    ``clock`` and ``sleep`` are the agent's sense of time: a test gives its own
    to run retention "N days later" or to count back-off delays.
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        orthanc: Any = None,
        hub: HubClient | None = None,
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.version = agent_version()
        self.orthanc = orthanc or OrthancApiClient(
            config.orthanc_url,
            user=config.orthanc_user or None,
            pwd=config.orthanc_password or None,
        )
        self.hub = hub or HubClient(
            config.hub_url,
            config.token,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            user_agent=self.version,
        )
        self.clock = clock
        self.sleep = sleep
        self._last_heartbeat: datetime | None = None
        self._state = AgentState()
        self._in_heartbeat = False

    # --- the loop ------------------------------------------------------------------------

    def run(self, *, once: bool = False) -> CycleReport:
        """Run cycles until stopped (or one cycle with ``once``); return the last report."""
        while True:
            if once:
                return self.cycle()
            try:
                report = self.cycle(always_heartbeat=False)
            except GaveUp:
                raise
            except Exception:
                # A daemon outlives surprises; the cursor is where it was, so nothing is lost.
                logger.exception("edge agent cycle failed; trying again")
                report = CycleReport()
            if not report.confirmed and not report.failed:
                self.sleep(self.config.poll_interval)

    def cycle(self, *, always_heartbeat: bool = True) -> CycleReport:
        """Push what Orthanc has beyond the cursor, apply retention, send a heartbeat.

        The daemon sends the heartbeat only once per ``heartbeat_interval``: an idle
        edge polls Orthanc every few seconds, the hub needs to hear from it far less.
        """
        state = load_state(self.config.state_file)
        self._state = state
        report = CycleReport()
        self._drain(state, report)
        if self.config.delete_after_days is not None:
            self._retain(state, report)
        report.cursor = state.cursor
        report.backlog, report.lag_seconds = self._backlog(state)
        if always_heartbeat or self._heartbeat_due():
            self._heartbeat(report.backlog, report.lag_seconds)
        return report

    def _retrying(self, what: str, action: Callable[[], T]) -> T:
        """Return ``action()``, retrying with capped exponential back-off while that may help."""
        attempt = 0
        while True:
            try:
                return action()
            except Exception as exc:
                code = _retryable(exc)
                if code is None:
                    raise
                attempt += 1
                if self.config.max_retries is not None and attempt > self.config.max_retries:
                    raise GaveUp(
                        f"{what}: still failing after {attempt} attempts ({code})"
                    ) from exc
                delay = min(self.config.retry_initial * 2 ** (attempt - 1), self.config.retry_max)
                logger.warning(
                    "%s failed (%s); attempt %d, next in %.2f s", what, code, attempt, delay
                )
                # Keep telling the hub how far behind we are while an operation keeps failing.
                self._heartbeat_if_due()
                self.sleep(delay)

    # --- following the changes ----------------------------------------------------------

    def _changes(self, since: int, *, retry: bool = True) -> tuple[list[Any], int, bool]:
        def read() -> tuple[list[Any], int, bool]:
            return self.orthanc.get_changes(since=since, limit=self.config.changes_page)

        return self._retrying("read Orthanc changes", read) if retry else read()

    def _drain(self, state: AgentState, report: CycleReport) -> None:
        while True:
            changes, last_seq, done = self._changes(state.cursor)
            if not changes and last_seq < state.cursor:
                # Orthanc's database is younger than our cursor (reinstalled or reset):
                # start over; the hub ignores what it already holds.
                logger.warning(
                    "Orthanc's last change %d is before the cursor %d; starting over",
                    last_seq,
                    state.cursor,
                )
                state.cursor = 0
                save_state(self.config.state_file, state)
                continue
            stable = [c for c in changes if c.change_type == ChangeType.STABLE_STUDY]
            # A later StableStudy of the same study in this page covers an earlier one.
            last_of = {c.resource_id: i for i, c in enumerate(stable)}
            for i, change in enumerate(stable):
                if last_of[change.resource_id] != i:
                    continue
                outcome, uid = self._push_study(change.resource_id, state)
                if outcome == "confirmed":
                    report.confirmed.append(uid)
                elif outcome == "failed":
                    report.failed.append(uid)
                state.cursor = change.sequence_id
                save_state(self.config.state_file, state)
                self._heartbeat_if_due()
            if last_seq > state.cursor:
                state.cursor = last_seq
                save_state(self.config.state_file, state)
            if done or not changes:
                return

    def _study_facts(self, orthanc_id: str) -> tuple[str, list[OutgoingInstance]] | None:
        """Return the study's UID and its instances with their sizes, or None if it is gone."""
        try:
            study = self.orthanc.get_json(f"studies/{orthanc_id}")
            items = self.orthanc.get_json(f"studies/{orthanc_id}/instances")
        except orthanc_errors.ResourceNotFound:
            return None
        uid = str(study.get("MainDicomTags", {}).get("StudyInstanceUID", ""))
        instances = [OutgoingInstance(str(i["ID"]), int(i["FileSize"])) for i in items]
        return uid, instances

    def _batches(self, instances: list[OutgoingInstance]) -> Iterator[list[OutgoingInstance]]:
        batch: list[OutgoingInstance] = []
        size = 0
        for item in instances:
            if batch and (
                len(batch) >= self.config.batch_size
                or size + item.size > self.config.max_batch_bytes
            ):
                yield batch
                batch, size = [], 0
            batch.append(item)
            size += item.size
        if batch:
            yield batch

    def _fetch(self, orthanc_id: str) -> bytes:
        return bytes(self.orthanc.instances.get_file(orthanc_id))

    def _push_study(self, orthanc_id: str, state: AgentState) -> tuple[str, str]:
        """Push one study until the hub decided; return (outcome, study UID).

        The outcome is confirmed, failed (refused for good), gone (deleted from
        Orthanc meanwhile) or skipped (no valid Study Instance UID).
        """
        facts = self._retrying(f"read study {orthanc_id}", lambda: self._study_facts(orthanc_id))
        if facts is None:
            logger.info("study %s is no longer in Orthanc; passed over", orthanc_id)
            return "gone", ""
        uid, instances = facts
        if not UID.fullmatch(uid) or len(uid) > 64:
            logger.error("study %s has no valid Study Instance UID; passed over", orthanc_id)
            return "skipped", ""
        entry = {
            "study_instance_uid": uid,
            "orthanc_study_id": orthanc_id,
            "instances_at_edge": len(instances),
        }
        self._report([entry])
        error = ""
        try:
            for batch in self._batches(instances):
                result = self._retrying(
                    f"push study {uid}", functools.partial(self.hub.stow, uid, batch, self._fetch)
                )
                error = error or result.error
        except orthanc_errors.ResourceNotFound:
            logger.info("study %s (%s) left Orthanc while being pushed", orthanc_id, uid)
            return "gone", uid
        rows = self._report([{**entry, "error": error}])
        if error:
            logger.error("the hub refused study %s (%s) for good: %s", uid, orthanc_id, error)
            return "failed", uid
        confirmed = any(
            row.get("study_instance_uid") == uid and row.get("state") == "confirmed" for row in rows
        )
        logger.info(
            "pushed study %s (%s): %d instances%s",
            uid,
            orthanc_id,
            len(instances),
            "" if confirmed else ", not yet confirmed by the hub's ledger",
        )
        if confirmed and self.config.delete_after_days is not None:
            state.confirmed[orthanc_id] = Confirmation(uid, self.clock())
        return "confirmed", uid

    def _report(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Report studies to the hub's ledger; return its rows ([] if it refused the report)."""
        try:
            return self._retrying("report to the ledger", lambda: self.hub.report(entries))
        except HubRefused as exc:
            logger.error("the hub refused a ledger report: %s", exc.code)
            return []

    # --- retention -----------------------------------------------------------------------

    def _retain(self, state: AgentState, report: CycleReport) -> None:
        """Delete studies confirmed long enough ago, if the hub's ledger still confirms them."""
        assert self.config.delete_after_days is not None
        cutoff = self.clock() - timedelta(days=self.config.delete_after_days)
        due = [(oid, c) for oid, c in sorted(state.confirmed.items()) if c.confirmed_at <= cutoff]
        for orthanc_id, confirmation in due:
            facts = self._retrying(
                f"read study {orthanc_id}", functools.partial(self._study_facts, orthanc_id)
            )
            if facts is None or facts[0] != confirmation.study_instance_uid:
                del state.confirmed[orthanc_id]  # gone from Orthanc already
                save_state(self.config.state_file, state)
                continue
            uid, instances = facts
            rows = self._report(
                [
                    {
                        "study_instance_uid": uid,
                        "orthanc_study_id": orthanc_id,
                        "instances_at_edge": len(instances),
                    }
                ]
            )
            row = next((r for r in rows if r.get("study_instance_uid") == uid), None)
            if (
                row is None
                or row.get("state") != "confirmed"
                or int(row.get("instances_confirmed", 0)) < len(instances)
            ):
                # Never delete what the hub does not hold: push it again, and wait anew.
                logger.warning(
                    "the hub does not confirm study %s (%s); not deleted", uid, orthanc_id
                )
                del state.confirmed[orthanc_id]
                save_state(self.config.state_file, state)
                self._push_study(orthanc_id, state)
                save_state(self.config.state_file, state)
                continue
            with contextlib.suppress(orthanc_errors.ResourceNotFound):  # already gone: fine
                self._retrying(
                    f"delete study {orthanc_id}",
                    functools.partial(self.orthanc.studies.delete, orthanc_id=orthanc_id),
                )
            logger.info("deleted study %s (%s) from Orthanc: the hub holds it", uid, orthanc_id)
            report.deleted.append(uid)
            del state.confirmed[orthanc_id]
            save_state(self.config.state_file, state)

    # --- health --------------------------------------------------------------------------

    def _backlog(self, state: AgentState, *, retry: bool = True) -> tuple[int, int]:
        """Return (stable studies beyond the cursor, age in seconds of the oldest of them)."""
        since = state.cursor
        waiting: set[str] = set()
        oldest: datetime | None = None
        for _page in range(BACKLOG_SCAN_PAGES):
            changes, last_seq, done = self._changes(since, retry=retry)
            for change in changes:
                if change.change_type == ChangeType.STABLE_STUDY:
                    waiting.add(change.resource_id)
                    # Orthanc dates its changes in UTC.
                    stamp = change.timestamp.replace(tzinfo=UTC)
                    oldest = stamp if oldest is None or stamp < oldest else oldest
            since = last_seq
            if done or not changes:
                break
        lag = max(0, int((self.clock() - oldest).total_seconds())) if oldest else 0
        return len(waiting), lag

    def _heartbeat(self, backlog: int, lag_seconds: int) -> None:
        try:
            self.hub.heartbeat(backlog=backlog, lag_seconds=lag_seconds, version=self.version)
        except (HubUnavailable, HubRefused) as exc:
            logger.warning("heartbeat not delivered: %s", exc.code)
            return
        self._last_heartbeat = self.clock()

    def _heartbeat_due(self) -> bool:
        if self._last_heartbeat is None:
            return True
        interval = timedelta(seconds=self.config.heartbeat_interval)
        return self.clock() - self._last_heartbeat >= interval

    def _heartbeat_if_due(self) -> None:
        """Send a heartbeat if the last one is older than the interval; never raise."""
        if self._in_heartbeat or not self._heartbeat_due():
            return
        self._in_heartbeat = True  # reading the backlog may itself fail and retry
        try:
            self._heartbeat(*self._backlog(self._state, retry=False))
        except orthanc_errors.OrthancApiException as exc:
            logger.warning("heartbeat skipped: %s", type(exc).__name__)
        finally:
            self._in_heartbeat = False


def run_agent(
    config: AgentConfig,
    *,
    once: bool = False,
    clock: Callable[[], datetime] = _utcnow,
    sleep: Callable[[float], None] = time.sleep,
) -> CycleReport:
    """Run the edge agent with ``config``; see ``EdgeAgent``."""
    agent = EdgeAgent(config, clock=clock, sleep=sleep)
    try:
        return agent.run(once=once)
    finally:
        agent.hub.close()
