"""``/api/patients/``: the regional patient index as a doctor uses it.

A doctor searches their own institution's patients; a patient's page lists
the person's studies at every institution — only those the doctor may open,
with no count or hint of the others. Records are linked only on purpose: by
the resident ID number (hashed at once, never kept or logged) or by the
doctor's confirmation of a match between two records they can both see.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hospitals.api.common import IsPerson, validated
from referrals.api.common import (
    DomainErrorOutput,
    DomainErrorsAsStatus,
    InstitutionBrief,
    StudyOutput,
)
from referrals.selectors import (
    access_patient,
    linked_records,
    person_studies,
    search_patients,
    visible_patients,
)
from regional_cloud.audit import audit
from studies.identity import patient_link_by_national_id, patient_link_confirm
from studies.models import Patient


class IndexPatientOutput(serializers.ModelSerializer[Patient]):
    issuer = InstitutionBrief()
    linked = serializers.SerializerMethodField()

    class Meta:
        model = Patient
        fields = [
            "uuid",
            "patient_id",
            "patient_name",
            "patient_sex",
            "patient_birth_date",
            "issuer",
            "linked",
            "link_method",
        ]

    def get_linked(self, patient: Patient) -> bool:
        return patient.person_id is not None


class IndexPatientDetailOutput(IndexPatientOutput):
    """A patient, their other records you may see, and the person's studies you may open."""

    records = IndexPatientOutput(many=True)
    studies = StudyOutput(many=True)

    class Meta(IndexPatientOutput.Meta):
        fields = [*IndexPatientOutput.Meta.fields, "records", "studies"]


class SearchInput(serializers.Serializer[Any]):
    q = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)


class LinkInput(serializers.Serializer[Any]):
    """Either the resident ID number (18 characters) or another record to confirm as the same."""

    national_id = serializers.CharField(
        required=False, max_length=32, write_only=True, trim_whitespace=True
    )
    other = serializers.UUIDField(required=False, help_text="A patient record you may see.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("national_id")) == bool(attrs.get("other")):
            raise ValidationError(_("Give either national_id or other."))
        return attrs


class PatientListView(generics.GenericAPIView[Patient]):
    """Search your institutions' patients by name or PatientID."""

    permission_classes = [IsPerson]
    serializer_class = IndexPatientOutput

    def get_queryset(self) -> QuerySet[Patient]:
        return visible_patients(self.request.user)

    @extend_schema(
        parameters=[OpenApiParameter("q", OpenApiTypes.STR)], operation_id="patients_list"
    )
    def get(self, request: Request) -> Response:
        """List your institutions' patients matching ``q`` (name or PatientID), at most 50."""
        query = validated(SearchInput, request.query_params)
        patients = list(search_patients(request.user, query["q"]))
        # The typed query may be a name: the audit keeps only how many were found.
        audit(
            action="patient.search",
            actor=request.user,
            object_type="patient",
            request=request,
            detail={"results": len(patients)},
        )
        return Response(IndexPatientOutput(patients, many=True).data)


def patient_detail(user: Any, patient: Patient) -> dict[str, Any]:
    return {
        **IndexPatientOutput(patient).data,
        "records": IndexPatientOutput(linked_records(user, patient), many=True).data,
        "studies": StudyOutput(person_studies(user, patient), many=True).data,
    }


class PatientDetailView(DomainErrorsAsStatus, APIView):
    permission_classes = [IsPerson]

    @extend_schema(responses={200: IndexPatientDetailOutput, 404: DomainErrorOutput})
    def get(self, request: Request, uuid: str) -> Response:
        """Show a patient with the person's studies you may open, at any institution."""
        patient = access_patient(request.user, uuid)
        audit(
            action="patient.view",
            actor=request.user,
            institution=patient.issuer,
            object_type="patient",
            object_id=patient.uuid,
            patient_ref=patient.uuid,
            request=request,
        )
        return Response(patient_detail(request.user, patient))


class PatientLinkView(DomainErrorsAsStatus, APIView):
    permission_classes = [IsPerson]

    @extend_schema(
        request=LinkInput,
        responses={200: IndexPatientDetailOutput, 400: DomainErrorOutput, 404: DomainErrorOutput},
    )
    def post(self, request: Request, uuid: str) -> Response:
        """Link the patient to a regional person: by resident ID number or a confirmed match."""
        patient = access_patient(request.user, uuid)
        data = validated(LinkInput, request.data)
        if data.get("national_id"):
            patient_link_by_national_id(
                patient=patient, national_id=data["national_id"], actor=request.user
            )
        else:
            other = visible_patients(request.user).filter(uuid=data["other"]).first()
            if other is None:
                raise ValidationError({"other": [_("No patient you may see has this UUID.")]})
            patient_link_confirm(patient=patient, other=other, actor=request.user)
        patient.refresh_from_db()
        return Response(patient_detail(request.user, patient))
