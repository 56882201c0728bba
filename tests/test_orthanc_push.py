"""Edge push end to end: a real Orthanc, the edge agent (or Orthanc's own DICOMweb client)
and a live hub on the test database."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import call_command

from hospitals.models import EdgeNode, Role
from hospitals.services import IssuedEdgeToken, edge_node_create
from regional_cloud.models import AuditEvent
from studies.archive import get_store
from studies.models import EdgeStudy, Instance, Study
from tests.edge_helpers import EdgeStudyFixture, last_change, sop_uid, upload_ct, wait_stable
from tests.factories import PASSWORD, make_user
from tests.fixtures.archive import file_archive  # noqa: F401 - fixture
from tests.fixtures.orthanc import Orthanc

pytestmark = [
    pytest.mark.orthanc,
    pytest.mark.timeout(240),
    pytest.mark.usefixtures("transactional_db", "file_archive"),
]


@pytest.fixture
def edge(network: dict[str, Any]) -> IssuedEdgeToken:
    return edge_node_create(institution=network["clinic"], name="PACS-1")


def assert_in_hub_byte_identical(orthanc: Orthanc, study: EdgeStudyFixture, origin: Any) -> None:
    indexed = Study.objects.get(study_instance_uid=study.study_instance_uid)
    assert indexed.origin == origin
    assert indexed.number_of_instances == len(study.instance_ids)
    store = get_store()
    for orthanc_instance_id in study.instance_ids:
        data = orthanc.client.instances.get_file(orthanc_instance_id)
        instance = Instance.objects.get(sop_instance_uid=sop_uid(data))
        assert instance.study_id == indexed.pk
        with store.open(instance.archive_key) as stored:
            assert stored.read() == data
        assert data == study.files[instance.sop_instance_uid]


def run_command(config_path: Path) -> str:
    from io import StringIO

    out = StringIO()
    call_command("edge_agent", "--once", "--config", str(config_path), stdout=out)
    return out.getvalue()


def test_it_pushes_a_stable_study_to_the_hub_once(
    live_hub: str,
    orthanc_factory: Callable[..., Orthanc],
    edge: IssuedEdgeToken,
    network: dict[str, Any],
    tmp_path: Path,
):
    orthanc = orthanc_factory()
    study = upload_ct(orthanc, slices=20)
    wait_stable(orthanc, study.orthanc_id)
    token_file = tmp_path / "edge-token"
    token_file.write_text(edge.token + "\n")
    state_file = tmp_path / "state" / "edge-agent.json"
    config = tmp_path / "edge-agent.json"
    config.write_text(
        json.dumps(
            {
                "orthanc_url": orthanc.url,
                "orthanc_user": orthanc.user,
                "orthanc_password": orthanc.password,
                "hub_url": live_hub,
                "token_file": str(token_file),
                "state_file": str(state_file),
                "batch_size": 6,
                "max_retries": 2,
            }
        )
    )

    output = run_command(config)

    assert output.startswith("1 confirmed, 0 failed"), output
    assert_in_hub_byte_identical(orthanc, study, network["clinic"])
    ledger = EdgeStudy.objects.get(study_instance_uid=study.study_instance_uid)
    assert (ledger.state, ledger.instances_at_edge, ledger.instances_confirmed) == (
        EdgeStudy.State.CONFIRMED,
        20,
        20,
    )
    assert ledger.orthanc_study_id == study.orthanc_id
    node = EdgeNode.objects.get(pk=edge.edge_node.pk)
    assert node.last_contact_at is not None
    assert (node.backlog, node.lag_seconds) == (0, 0)
    assert node.agent_version.startswith("edge-agent/")
    cursor = json.loads(state_file.read_text())["cursor"]
    assert cursor == last_change(orthanc)
    ingests = AuditEvent.objects.filter(action="study.ingest").count()

    again = run_command(config)

    assert again.startswith("0 confirmed, 0 failed"), again
    assert Instance.objects.count() == 20
    assert AuditEvent.objects.filter(action="study.ingest").count() == ingests
    assert json.loads(state_file.read_text())["cursor"] == cursor

    # New work at the edge moves the cursor on.
    second = upload_ct(orthanc, slices=3, seed=1)
    wait_stable(orthanc, second.orthanc_id)

    third = run_command(config)

    assert third.startswith("1 confirmed"), third
    assert json.loads(state_file.read_text())["cursor"] > cursor
    assert_in_hub_byte_identical(orthanc, second, network["clinic"])


def test_it_logs_uids_and_never_patient_names(
    live_hub: str,
    orthanc_factory: Callable[..., Orthanc],
    edge: IssuedEdgeToken,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
):
    from tests.edge_helpers import agent_config

    orthanc = orthanc_factory()
    study = upload_ct(orthanc, slices=2, seed=2)
    wait_stable(orthanc, study.orthanc_id)
    caplog.set_level("DEBUG")

    from studies.edge.agent import run_agent

    run_agent(agent_config(orthanc, live_hub, edge.token, tmp_path / "state.json"), once=True)

    assert study.study_instance_uid in caplog.text
    family, given = study.patient_name.split("^")
    assert family not in caplog.text
    assert given not in caplog.text


@pytest.mark.parametrize("auth", ["bearer", "basic"])
def test_it_accepts_a_push_from_orthancs_own_dicomweb_client(
    live_hub: str,
    orthanc_factory: Callable[..., Orthanc],
    edge: IssuedEdgeToken,
    network: dict[str, Any],
    auth: str,
):
    url = f"{live_hub}/dicom-web/"
    if auth == "bearer":
        # The extended form: the edge's own token as a header, and a Content-Length
        # (a WSGI hub with no proxy in front cannot read a chunked body).
        server: Any = {
            "Url": url,
            "HttpHeaders": {"Authorization": f"Bearer {edge.token}"},
            "ChunkedTransfers": False,
        }
    else:
        technician = make_user(institution=network["clinic"], role=Role.TECHNICIAN)
        server = {
            "Url": url,
            "Username": technician.username,
            "Password": PASSWORD,
            "ChunkedTransfers": False,
        }
    orthanc = orthanc_factory({"DicomWeb": {"Servers": {"hub": server}}})
    study = upload_ct(orthanc, slices=8, seed=3)

    response = requests.post(
        f"{orthanc.url}/dicom-web/servers/hub/stow",
        auth=(orthanc.user, orthanc.password),
        json={"Resources": [study.orthanc_id]},
        timeout=120,
    )

    assert response.status_code == 200, response.text
    assert_in_hub_byte_identical(orthanc, study, network["clinic"])
