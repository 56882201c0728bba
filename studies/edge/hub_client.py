"""The hub as the edge agent sees it: STOW-RS, the edge ledger and the heartbeat.

Every request carries ``Authorization: Bearer <edge token>``. A STOW-RS body
is multipart/related (PS3.18 10.5) built from a generator: one instance is read
from Orthanc at a time while the request is being sent, so a study of any size
costs one instance of memory. The body's length is computed beforehand from
Orthanc's file sizes, so the request carries a Content-Length (a WSGI server
behind no proxy cannot read a chunked body).

Errors fall in two kinds: ``HubUnavailable`` (try again later, without
advancing: the hub is down, overloaded, refuses our token, or its archive is
out of resources) and a ``StowResult`` with ``error`` set (the hub looked at
the instances and refused some for good: retrying would be refused again).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

# PS3.18 Table 10.5.3-1 / PS3.4 C.4.2.1.4: reasons the hub may give per instance.
FAILURE_CODES = {
    0x0110: "processing_failure",
    0x0111: "duplicate_sop_instance",
    0x0122: "sop_class_not_supported",
    0xA700: "out_of_resources",
    0xA900: "dataset_does_not_match",
    0xC000: "cannot_understand",
    0xC122: "transfer_syntax_not_supported",
}
# Reasons that describe the hub's state, not the instance: sending again may work.
TRANSIENT_FAILURES = frozenset({0x0110, 0xA700})
# Statuses after which the same request may succeed later (a fixed token, a hub back up).
RETRY_STATUSES = frozenset({401, 403, 404, 408, 429})


class HubUnavailable(Exception):
    """The hub did not take the request; it may later. ``code`` is short and PHI-free."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


class HubRefused(Exception):
    """The hub refused a ledger or heartbeat request as malformed: sending it again won't help."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class SourceChanged(Exception):
    """An instance read from Orthanc does not have the size Orthanc announced."""


@dataclass(frozen=True)
class OutgoingInstance:
    orthanc_id: str
    size: int


@dataclass
class StowResult:
    status: int
    stored: list[str] = field(default_factory=list)  # SOP Instance UIDs
    failures: list[int] = field(default_factory=list)  # Failure Reasons

    @property
    def error(self) -> str:
        """Return a short code when the hub refused instances for good, else ''."""
        if self.failures:
            reasons = sorted(set(self.failures))
            return FAILURE_CODES.get(reasons[0], f"failure_{reasons[0]:04x}")
        if self.status != 200:
            return f"http_{self.status}"
        return ""


class StowBody:
    """A multipart/related body of known length whose parts are fetched lazily."""

    def __init__(
        self,
        instances: Sequence[OutgoingInstance],
        fetch: Callable[[str], bytes],
        boundary: str | None = None,
    ) -> None:
        self.instances = list(instances)
        self.fetch = fetch
        self.boundary = boundary or f"edge-{uuid.uuid4().hex}"
        self._head = f"--{self.boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii")
        self._tail = f"--{self.boundary}--\r\n".encode("ascii")

    @property
    def content_type(self) -> str:
        return f'multipart/related; type="application/dicom"; boundary={self.boundary}'

    def __len__(self) -> int:
        parts = sum(len(self._head) + item.size + 2 for item in self.instances)
        return parts + len(self._tail)

    def __iter__(self) -> Iterator[bytes]:
        for item in self.instances:
            data = self.fetch(item.orthanc_id)
            if len(data) != item.size:
                raise SourceChanged(f"instance {item.orthanc_id} changed size while sending")
            yield self._head
            yield data
            yield b"\r\n"
        yield self._tail


def _dicom_values(item: dict[str, Any], tag: str) -> list[Any]:
    value = item.get(tag, {})
    return list(value.get("Value", [])) if isinstance(value, dict) else []


def parse_stow_response(status: int, payload: Any) -> StowResult:
    """Return what the hub stored and refused, from its Store Instances Response."""
    result = StowResult(status=status)
    if not isinstance(payload, dict):
        return result
    for item in _dicom_values(payload, "00081199"):
        result.stored.extend(str(uid) for uid in _dicom_values(item, "00081155"))
    for item in _dicom_values(payload, "00081198"):
        reasons = _dicom_values(item, "00081197")
        result.failures.append(int(reasons[0]) if reasons else 0x0110)
    return result


class HubClient:
    """Talk to the hub with the edge's token.

    Every method raises ``HubUnavailable`` when the hub may answer later; the
    ledger and heartbeat raise ``HubRefused`` when it rejected the request itself.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 300.0,
        user_agent: str = "regional-cloud-edge-agent",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "User-Agent": user_agent})

    def close(self) -> None:
        self.session.close()

    def _post(self, path: str, **kwargs: Any) -> requests.Response:
        try:
            # No redirects: following one would turn the POST into a GET and drop the body.
            response = self.session.post(
                f"{self.base_url}{path}", timeout=self.timeout, allow_redirects=False, **kwargs
            )
        except requests.Timeout as exc:
            raise HubUnavailable("timeout") from exc
        except requests.ConnectionError as exc:
            raise HubUnavailable("unreachable") from exc
        status = response.status_code
        if status >= 500 or 300 <= status < 400 or status in RETRY_STATUSES:
            raise HubUnavailable(f"http_{response.status_code}")
        return response

    def stow(
        self,
        study_instance_uid: str,
        instances: Sequence[OutgoingInstance],
        fetch: Callable[[str], bytes],
    ) -> StowResult:
        """Send ``instances`` of one study; return the hub's verdict.

        Raises ``HubUnavailable`` when the hub did not decide, including when it
        refused an instance for a reason of its own state (out of resources).
        """
        body = StowBody(instances, fetch)
        response = self._post(
            f"/dicom-web/studies/{study_instance_uid}",
            data=body,
            headers={"Content-Type": body.content_type, "Accept": "application/dicom+json"},
        )
        try:
            payload = response.json()
        except ValueError:
            payload = None
        result = parse_stow_response(response.status_code, payload)
        transient = [reason for reason in result.failures if reason in TRANSIENT_FAILURES]
        if transient:
            raise HubUnavailable(FAILURE_CODES[transient[0]])
        return result

    def report(self, studies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Report studies held at the edge; return the hub's ledger rows for them."""
        response = self._post("/api/edge-nodes/ledger/", json={"studies": studies})
        if response.status_code != 200:
            raise HubRefused(f"ledger_http_{response.status_code}")
        rows = response.json()
        return rows if isinstance(rows, list) else []

    def heartbeat(self, *, backlog: int, lag_seconds: int, version: str) -> None:
        response = self._post(
            "/api/edge-nodes/heartbeat/",
            json={"backlog": backlog, "lag_seconds": lag_seconds, "version": version},
        )
        if response.status_code != 200:
            raise HubRefused(f"heartbeat_http_{response.status_code}")
