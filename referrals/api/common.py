"""What the referral API's endpoints share: error mapping and small output pieces."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers
from rest_framework.response import Response

from referrals.rules import ReferralError
from studies.identity import IdentityError
from studies.models import Study


class DomainErrorsAsStatus:
    """Answer a refused write with the service's status, ``{"detail", "code"}``."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ReferralError):
            return Response({"detail": exc.message, "code": exc.code}, status=exc.status)
        if isinstance(exc, IdentityError):
            return Response({"detail": str(exc), "code": "identity"}, status=400)
        return super().handle_exception(exc)  # type: ignore[misc]


class DomainErrorOutput(serializers.Serializer[Any]):
    detail = serializers.CharField()
    code = serializers.CharField()


class InstitutionBrief(serializers.Serializer[Any]):
    uuid = serializers.UUIDField()
    name = serializers.CharField()
    tier = serializers.CharField()


class StudyOutput(serializers.Serializer[Any]):
    """A study the caller may see: what a list of priors shows."""

    study_instance_uid = serializers.CharField()
    study_date = serializers.CharField()
    study_description = serializers.CharField()
    modalities = serializers.ListField(child=serializers.CharField())
    number_of_instances = serializers.IntegerField()
    origin = InstitutionBrief()
    viewer_url = serializers.SerializerMethodField()
    recognition_url = serializers.SerializerMethodField()

    def get_viewer_url(self, study: Study) -> str:
        return f"/viewer/{study.study_instance_uid}/"

    def get_recognition_url(self, study: Study) -> str:
        return reverse("api-recognition", args=[study.study_instance_uid])
