"""Bearer tokens on /dicom-web/: every revocation takes effect on the next request.

Token look-up is a single written-out statement per request and nothing is
cached, so revoking a token, rotating it, or deactivating the edge, its
institution or the user is refused at once — in this process and in every
other server process.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from hospitals.authentication import user_for_token
from hospitals.models import EdgeNode, Membership, Role
from hospitals.services import (
    api_token_create,
    api_token_revoke,
    edge_node_create,
    edge_node_rotate_token,
    membership_grant,
    membership_revoke,
)
from studies.models import Instance
from studies.senders import sending_institutions
from tests.dicom_helpers import ct_small, multipart, stow_content_type, to_bytes
from tests.factories import make_institution, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("file_archive")]


def stow_with(token: str) -> int:
    response = Client().post(
        "/dicom-web/studies",
        data=multipart([to_bytes(ct_small())]),
        content_type=stow_content_type(),
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    return response.status_code


@pytest.fixture
def edge(network: dict[str, Any]) -> Any:
    issued = edge_node_create(institution=network["clinic"], name="orthanc-auth")
    assert stow_with(issued.token) == 200
    return issued


def test_an_edge_token_resolves_to_its_user_edge_and_institution(edge: Any, network: dict):
    user, node = user_for_token(edge.token)
    assert node.pk == edge.edge_node.pk
    assert user.pk == edge.edge_node.service_user_id
    assert node.service_user is user
    assert node.institution == network["clinic"]
    assert node.institution.name == network["clinic"].name
    assert node.token_rotated_at == EdgeNode.objects.get(pk=node.pk).token_rotated_at


def test_a_deactivated_edge_is_refused_at_once(edge: Any):
    EdgeNode.objects.filter(pk=edge.edge_node.pk).update(is_active=False)
    assert stow_with(edge.token) == 401


def test_a_rotated_edge_token_is_refused_at_once(edge: Any):
    rotated = edge_node_rotate_token(edge_node=edge.edge_node)
    assert stow_with(edge.token) == 401
    assert stow_with(rotated.token) == 200


def test_an_edge_of_a_deactivated_institution_is_refused_at_once(edge: Any, network: dict):
    type(network["clinic"]).objects.filter(pk=network["clinic"].pk).update(is_active=False)
    assert stow_with(edge.token) == 401


def test_an_edge_whose_service_user_is_deactivated_is_refused_at_once(edge: Any):
    get_user_model().objects.filter(pk=edge.edge_node.service_user_id).update(is_active=False)
    assert stow_with(edge.token) == 401


def test_an_edge_without_its_sending_membership_may_not_send(edge: Any):
    membership = Membership.objects.get(user_id=edge.edge_node.service_user_id)
    Membership.objects.filter(pk=membership.pk).update(is_active=False)
    count = Instance.objects.count()
    assert stow_with(edge.token) == 403
    assert Instance.objects.count() == count


def test_a_revoked_api_token_is_refused_at_once(network: dict[str, Any]):
    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    api_token, token = api_token_create(user=user, name="pacs-bridge")
    assert stow_with(token) == 200
    api_token_revoke(api_token=api_token, actor=user)
    assert stow_with(token) == 401


def test_an_api_token_of_a_deactivated_user_is_refused_at_once(network: dict[str, Any]):
    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    _api_token, token = api_token_create(user=user, name="pacs-bridge")
    assert stow_with(token) == 200
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    assert stow_with(token) == 401


def test_an_api_token_resolves_to_its_user(network: dict[str, Any]):
    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    api_token, token = api_token_create(user=user, name="pacs-bridge")
    found_user, found_token = user_for_token(token)
    assert found_user == user
    assert found_user.username == user.username
    assert found_token.pk == api_token.pk
    assert found_token.user is found_user


def test_sending_institutions_are_the_active_ones_with_a_sending_role(network: dict[str, Any]):
    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    second = make_institution(region=network["region"], code="aaa-first-by-code")
    third = make_institution(region=network["region"])
    membership_grant(user=user, institution=second, role=Role.TECHNICIAN)
    membership_grant(user=user, institution=third, role=Role.BUREAU_ANALYST)  # not a sender
    assert sending_institutions(user) == sorted([network["clinic"], second], key=lambda i: i.code)
    membership_revoke(membership=Membership.objects.get(user=user, institution=second))
    assert sending_institutions(user) == [network["clinic"]]
    type(second).objects.filter(pk=network["clinic"].pk).update(is_active=False)
    assert sending_institutions(user) == []
