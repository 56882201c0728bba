"""The edge ledger: edges report what they hold, the hub confirms it from its own index."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from hospitals.models import Role
from hospitals.services import IssuedEdgeToken, api_token_create, edge_node_create
from regional_cloud.models import AuditEvent
from studies.ingest import ReceivedFile, Sender, instances_ingest
from studies.models import EdgeStudy
from tests.dicom_helpers import ct_small, multipart, random_uid, stow_content_type, to_bytes
from tests.factories import make_user
from tests.fixtures.archive import file_archive  # noqa: F401 - fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("file_archive")]

PATIENT_NAME = "王^小东"
LEDGER_REPORT = "/api/edge-nodes/ledger/"


@pytest.fixture
def edge(network: dict[str, Any]) -> IssuedEdgeToken:
    return edge_node_create(institution=network["clinic"], name="PACS-1")


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def push(token: str, study_uid: str, count: int) -> None:
    """Store ``count`` instances of one study through STOW-RS with ``token``."""
    parts = [
        to_bytes(ct_small(study_uid=study_uid, patient_name=PATIENT_NAME)) for _ in range(count)
    ]
    response = Client().post(
        f"/dicom-web/studies/{study_uid}",
        data=multipart(parts),
        content_type=stow_content_type(),
        **bearer(token),
    )
    assert response.status_code == 200, response.content


def ingest_for(sender: Sender, study_uid: str) -> None:
    data = to_bytes(ct_small(study_uid=study_uid, patient_name=PATIENT_NAME))
    received = ReceivedFile(io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest())
    report = instances_ingest(files=[received], sender=sender)
    assert not report.refused


def report(token: str, *studies: dict[str, Any]) -> Any:
    return Client().post(
        LEDGER_REPORT,
        data={"studies": list(studies)},
        content_type="application/json",
        **bearer(token),
    )


def entry(uid: str, count: int, orthanc_id: str = "abc-123", error: str = "") -> dict[str, Any]:
    item: dict[str, Any] = {
        "study_instance_uid": uid,
        "orthanc_study_id": orthanc_id,
        "instances_at_edge": count,
    }
    if error:
        item["error"] = error
    return item


def test_it_confirms_a_study_only_when_the_hub_indexed_every_instance(edge: IssuedEdgeToken):
    uid = random_uid()
    first = report(edge.token, entry(uid, 3))
    assert first.status_code == 200, first.content
    assert first.json()[0]["state"] == "pending"
    assert first.json()[0]["instances_confirmed"] == 0

    push(edge.token, uid, 2)
    partial = report(edge.token, entry(uid, 3)).json()[0]
    assert (partial["instances_confirmed"], partial["state"]) == (2, "pending")

    push(edge.token, uid, 1)
    done = report(edge.token, entry(uid, 3)).json()[0]
    assert (done["instances_confirmed"], done["state"]) == (3, "confirmed")
    assert done["confirmed_at"] is not None
    row = EdgeStudy.objects.get(study_instance_uid=uid)
    assert row.edge_node == edge.edge_node
    assert row.orthanc_study_id == "abc-123"
    assert AuditEvent.objects.filter(action="edge.study_confirmed", study_uid=uid).count() == 1


def test_it_is_idempotent(edge: IssuedEdgeToken):
    uid = random_uid()
    push(edge.token, uid, 1)
    first = report(edge.token, entry(uid, 1)).json()[0]
    second = report(edge.token, entry(uid, 1)).json()[0]

    assert first["state"] == second["state"] == "confirmed"
    assert first["confirmed_at"] == second["confirmed_at"]
    assert EdgeStudy.objects.filter(study_instance_uid=uid).count() == 1
    assert AuditEvent.objects.filter(action="edge.study_confirmed", study_uid=uid).count() == 1


def test_it_never_takes_the_edges_word_for_confirmation(edge: IssuedEdgeToken):
    uid = random_uid()
    body = entry(uid, 2)
    body["instances_confirmed"] = 2  # not an input: ignored
    body["state"] = "confirmed"

    row = report(edge.token, body).json()[0]

    assert (row["instances_confirmed"], row["state"]) == (0, "pending")


def test_it_counts_only_instances_sent_by_the_edges_institution(
    edge: IssuedEdgeToken, network: dict[str, Any]
):
    uid = random_uid()
    doctor = make_user(institution=network["other_clinic"], role=Role.CLINIC_DOCTOR)
    ingest_for(Sender(user=doctor, institution=network["other_clinic"]), uid)

    row = report(edge.token, entry(uid, 1)).json()[0]

    assert (row["instances_confirmed"], row["state"]) == (0, "pending")


def test_it_records_a_failure_code_even_when_the_counts_match(edge: IssuedEdgeToken):
    uid = random_uid()
    failed = report(edge.token, entry(uid, 1, error="duplicate_sop_instance")).json()[0]
    assert (failed["state"], failed["last_error"]) == ("failed", "duplicate_sop_instance")
    assert AuditEvent.objects.filter(action="edge.study_failed", study_uid=uid).exists()

    # The hub holds an instance under each UID, but the edge says one was refused.
    push(edge.token, uid, 1)
    still = report(edge.token, entry(uid, 1, error="duplicate_sop_instance")).json()[0]
    assert (still["state"], still["instances_confirmed"]) == ("failed", 1)

    # A later push that the hub took whole clears it.
    confirmed = report(edge.token, entry(uid, 1)).json()[0]
    assert (confirmed["state"], confirmed["last_error"]) == ("confirmed", "")


@pytest.mark.parametrize("error", ["王小明 refused", "Patient^Name", "x" * 65])
def test_it_refuses_an_error_that_is_not_a_short_code(edge: IssuedEdgeToken, error: str):
    response = report(edge.token, entry(random_uid(), 1, error=error))

    assert response.status_code == 400
    assert not EdgeStudy.objects.exists()


def test_it_accepts_a_bare_list(edge: IssuedEdgeToken):
    uid = random_uid()
    response = Client().post(
        LEDGER_REPORT, data=[entry(uid, 1)], content_type="application/json", **bearer(edge.token)
    )

    assert response.status_code == 200, response.content
    assert response.json()[0]["study_instance_uid"] == uid


def test_it_refuses_a_report_from_anyone_but_an_edge(
    edge: IssuedEdgeToken, network: dict[str, Any], client_for: Any
):
    admin = make_user(institution=network["clinic"], role=Role.INSTITUTION_ADMIN)
    _api_token, personal = api_token_create(user=admin, name="script")
    body = {"studies": [entry(random_uid(), 1)]}

    anonymous = Client().post(LEDGER_REPORT, data=body, content_type="application/json")
    with_personal_token = Client().post(
        LEDGER_REPORT, data=body, content_type="application/json", **bearer(personal)
    )
    with_session = client_for(admin).post(LEDGER_REPORT, data=body, content_type="application/json")
    revoked = Client().post(
        LEDGER_REPORT, data=body, content_type="application/json", **bearer("edge_not-a-token")
    )

    assert anonymous.status_code == 401
    assert with_personal_token.status_code == 403
    assert with_session.status_code == 403
    assert revoked.status_code == 401
    assert not EdgeStudy.objects.exists()


# --- Reading the ledger: API and page ---------------------------------------------------


@pytest.fixture
def reported(edge: IssuedEdgeToken) -> str:
    """A study pushed and reported by the edge, with a patient name in its files."""
    uid = random_uid()
    push(edge.token, uid, 2)
    report(edge.token, entry(uid, 2, orthanc_id="0a1b2c3d-orthanc"))
    return uid


@pytest.fixture
def readers(network: dict[str, Any]) -> dict[str, Any]:
    return {
        "owner": make_user(institution=network["clinic"], role=Role.INSTITUTION_ADMIN),
        "regional": make_user(institution=network["county"], role=Role.REGIONAL_ADMIN),
        "outsider": make_user(institution=network["other_clinic"], role=Role.INSTITUTION_ADMIN),
        "doctor": make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR),
    }


def ledger_url(edge: IssuedEdgeToken) -> str:
    return reverse("api-edge-ledger", kwargs={"uuid": edge.edge_node.uuid})


def page_url(edge: IssuedEdgeToken) -> str:
    return reverse("edge_ledger", kwargs={"edge_uuid": edge.edge_node.uuid})


@pytest.mark.parametrize("who", ["owner", "regional"])
def test_it_shows_the_ledger_to_the_edges_admins(
    edge: IssuedEdgeToken, reported: str, readers: dict[str, Any], client_for: Any, who: str
):
    response = client_for(readers[who]).get(ledger_url(edge))

    assert response.status_code == 200, response.content
    rows = response.json()["results"]
    assert [(r["study_instance_uid"], r["instances_confirmed"], r["state"]) for r in rows] == [
        (reported, 2, "confirmed")
    ]


def test_it_filters_the_ledger_by_state(
    edge: IssuedEdgeToken, reported: str, readers: dict[str, Any], client_for: Any
):
    client = client_for(readers["owner"])

    assert client.get(ledger_url(edge), {"state": "pending"}).json()["results"] == []
    assert len(client.get(ledger_url(edge), {"state": "confirmed"}).json()["results"]) == 1
    assert client.get(ledger_url(edge), {"state": "nonsense"}).status_code == 400


@pytest.mark.parametrize("who", ["outsider", "doctor"])
def test_it_hides_the_ledger_from_others(
    edge: IssuedEdgeToken, reported: str, readers: dict[str, Any], client_for: Any, who: str
):
    client = client_for(readers[who])

    assert client.get(ledger_url(edge)).status_code == 404
    assert client.get(page_url(edge)).status_code == 404


def test_it_refuses_the_ledger_list_to_an_edge_token(edge: IssuedEdgeToken, reported: str):
    response = Client().get(ledger_url(edge), **bearer(edge.token))

    assert response.status_code == 403


def test_it_sends_an_anonymous_visitor_of_the_page_to_sign_in(edge: IssuedEdgeToken):
    response = Client().get(page_url(edge))

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("who", ["owner", "regional"])
def test_it_shows_the_edge_page_with_uids_and_counts_and_no_patient_names(
    edge: IssuedEdgeToken, reported: str, readers: dict[str, Any], client_for: Any, who: str
):
    edge.edge_node.backlog = 7
    edge.edge_node.lag_seconds = 42
    edge.edge_node.save(update_fields=["backlog", "lag_seconds"])

    response = client_for(readers[who]).get(page_url(edge))

    assert response.status_code == 200
    html = response.content.decode()
    assert reported in html
    assert "0a1b2c3d-orthanc" in html
    assert 'data-testid="backlog">7<' in html
    assert 'data-testid="count-confirmed">1<' in html
    for fragment in (PATIENT_NAME, "王", "小东", "P-1"):
        assert fragment not in html.replace(edge.edge_node.institution.name, "")
