"""``/api/consultations/``: request, answer, conclude; read the transcript and annotations.

Every consultation is fetched through ``visible_consultations`` (the one
permission filter), so another institution's consultation is a 404. A patient's
concluded consultations are listed at ``/api/patients/<uuid>/consultations/``:
the consultation in the patient's record.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from hospitals.api.common import IsPerson, validated
from referrals.api.common import DomainErrorOutput, DomainErrorsAsStatus
from referrals.consultation import services, signing
from referrals.consultation.models import Annotation, Consultation, Participant
from referrals.consultation.selectors import (
    access_consultation,
    consultant_candidates,
    consultation_actions,
    consultation_annotations,
    message_out,
    messages_after,
    participants_of,
    patient_consultations,
    visible_consultations,
)
from referrals.selectors import access_patient, access_referral, visible_studies
from regional_cloud.audit import audit

ERRORS = {
    400: DomainErrorOutput,
    403: DomainErrorOutput,
    404: DomainErrorOutput,
    409: DomainErrorOutput,
}


class ConsultationParticipantOutput(serializers.ModelSerializer[Participant]):
    user = serializers.CharField(source="user.username")
    name = serializers.SerializerMethodField()
    institution = serializers.CharField(source="institution.name")
    role = serializers.CharField(help_text=", ".join(Participant.Role.values))
    status = serializers.CharField(help_text=", ".join(Participant.Status.values))

    class Meta:
        model = Participant
        fields = ["user", "name", "institution", "role", "status", "invited_at", "responded_at"]

    def get_name(self, participant: Participant) -> str:
        return str(participant.user.get_full_name() or participant.user.get_username())


class ConsultationOutput(serializers.ModelSerializer[Consultation]):
    patient = serializers.UUIDField(source="patient.uuid")
    referral = serializers.UUIDField(source="referral.uuid", allow_null=True, default=None)
    institution = serializers.CharField(source="institution.name")
    requested_by = serializers.CharField(source="requested_by.username")
    lead = serializers.CharField(source="lead.username")
    state = serializers.CharField(help_text=", ".join(Consultation.State.values))
    state_label = serializers.CharField(source="get_state_display")
    concluded_by = serializers.CharField(
        source="concluded_by.username", allow_null=True, default=None
    )
    seal_valid = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField()
    transcript_url = serializers.SerializerMethodField()

    class Meta:
        model = Consultation
        fields = [
            "uuid",
            "state",
            "state_label",
            "patient",
            "referral",
            "institution",
            "requested_by",
            "lead",
            "question",
            "scheduled_for",
            "created_at",
            "started_at",
            "closed_at",
            "conclusion",
            "concluded_by",
            "concluded_at",
            "content_sha256",
            "seal_valid",
            "page_url",
            "transcript_url",
        ]

    def get_seal_valid(self, consultation: Consultation) -> bool | None:
        return signing.verify(consultation) if consultation.concluded_at else None

    def get_page_url(self, consultation: Consultation) -> str:
        return reverse("consultation_detail", args=[consultation.uuid])

    def get_transcript_url(self, consultation: Consultation) -> str:
        return reverse("consultation_transcript", args=[consultation.uuid])


class ConsultationDetailOutput(ConsultationOutput):
    participants = ConsultationParticipantOutput(many=True, source="participants_list")
    studies = serializers.ListField(child=serializers.CharField(), source="study_uids")
    actions = serializers.ListField(child=serializers.CharField(), source="caller_actions")

    class Meta(ConsultationOutput.Meta):
        fields = [*ConsultationOutput.Meta.fields, "participants", "studies", "actions"]


class ConsultationRequestInput(serializers.Serializer[Any]):
    referral = serializers.UUIDField(required=False)
    studies = serializers.ListField(
        child=serializers.CharField(max_length=64), default=list, max_length=50
    )
    consultants = serializers.ListField(
        child=serializers.CharField(max_length=150),
        min_length=1,
        max_length=20,
        help_text="Usernames of doctors in your region.",
    )
    lead = serializers.CharField(required=False, allow_blank=True)
    question = serializers.CharField(allow_blank=True, default="", max_length=4000)
    scheduled_for = serializers.DateTimeField(required=False, allow_null=True)


class ConsultationReasonInput(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=200)


class ConsultationConclusionInput(serializers.Serializer[Any]):
    conclusion = serializers.CharField(max_length=20000)


class ConsultationMessagesFilter(serializers.Serializer[Any]):
    after = serializers.IntegerField(min_value=0, default=0)


class ConsultationMessageOutput(serializers.Serializer[Any]):
    seq = serializers.IntegerField()
    client_msg_id = serializers.CharField()
    kind = serializers.CharField()
    author = serializers.DictField(allow_null=True)
    text = serializers.CharField()
    payload = serializers.DictField()
    snapshot_url = serializers.CharField()
    created_at = serializers.CharField()


class ConsultationAnnotationOutput(serializers.ModelSerializer[Annotation]):
    author = serializers.CharField(source="author.username")
    kind = serializers.CharField(help_text=", ".join(Annotation.Kind.values))

    class Meta:
        model = Annotation
        fields = [
            "uuid",
            "kind",
            "study_instance_uid",
            "series_instance_uid",
            "sop_instance_uid",
            "frame_number",
            "points",
            "text",
            "value",
            "unit",
            "author",
            "created_at",
        ]


def _detail(request: Request, consultation: Consultation) -> dict[str, Any]:
    consultation.participants_list = list(participants_of(consultation))  # type: ignore[attr-defined]
    consultation.study_uids = list(  # type: ignore[attr-defined]
        visible_studies(request.user)
        .filter(consultations=consultation)
        .values_list("study_instance_uid", flat=True)
    )
    consultation.caller_actions = consultation_actions(request.user, consultation)  # type: ignore[attr-defined]
    return dict(ConsultationDetailOutput(consultation).data)


class _ConsultationView(DomainErrorsAsStatus, generics.GenericAPIView[Consultation]):
    permission_classes = [IsPerson]
    serializer_class = ConsultationOutput

    def get_queryset(self) -> QuerySet[Consultation]:
        return visible_consultations(self.request.user)


class ConsultationListView(_ConsultationView):
    """The consultations you take part in (and concluded ones of your institution's patients)."""

    @extend_schema(
        parameters=[OpenApiParameter("state", OpenApiTypes.STR, enum=Consultation.State.values)],
        operation_id="consultations_list",
    )
    def get(self, request: Request) -> Response:
        """List consultations, newest first; ``state`` filters."""
        consultations = self.get_queryset().order_by("-created_at")
        if request.query_params.get("state"):
            consultations = consultations.filter(state=request.query_params["state"])
        page = self.paginate_queryset(consultations)
        return self.get_paginated_response(ConsultationOutput(page, many=True).data)

    @extend_schema(
        request=ConsultationRequestInput, responses={201: ConsultationDetailOutput, **ERRORS}
    )
    def post(self, request: Request) -> Response:
        """Request a consultation on a referral or on studies you may see."""
        data = validated(ConsultationRequestInput, request.data)
        referral = access_referral(request.user, data["referral"]) if data.get("referral") else None
        uids = list(dict.fromkeys(data["studies"]))
        studies = list(visible_studies(request.user).filter(study_instance_uid__in=uids))
        if len(studies) != len(uids):
            raise ValidationError({"studies": ["Only studies you may see can be discussed."]})
        candidates = consultant_candidates(request.user)
        by_name = {u.username: u for u in candidates.filter(username__in=data["consultants"])}
        missing = [n for n in data["consultants"] if n not in by_name]
        if missing:
            raise ValidationError({"consultants": [f"Not a doctor you may invite: {missing[0]}"]})
        lead = None
        if data.get("lead"):
            lead = get_user_model().objects.filter(username=data["lead"]).first()
        consultation = services.consultation_request(
            actor=request.user,
            referral=referral,
            studies=studies,
            consultants=[by_name[n] for n in data["consultants"]],
            lead=lead,
            question=data["question"],
            scheduled_for=data.get("scheduled_for"),
        )
        consultation = access_consultation(request.user, consultation.uuid)
        return Response(_detail(request, consultation), status=status.HTTP_201_CREATED)


class ConsultationDetailView(_ConsultationView):
    @extend_schema(responses={200: ConsultationDetailOutput, 404: DomainErrorOutput})
    def get(self, request: Request, uuid: str) -> Response:
        """Show a consultation, its participants, its studies and what you may do."""
        consultation = access_consultation(request.user, uuid)
        audit(
            action="consultation.view",
            actor=request.user,
            institution=consultation.institution,
            object_type="consultation",
            object_id=consultation.uuid,
            patient_ref=consultation.patient.uuid,
            request=request,
        )
        return Response(_detail(request, consultation))


class _ActView(_ConsultationView):
    """One answer or transition: fetch what the caller may see, call one service, answer."""

    def run(self, request: Request, uuid: str, action: str) -> Response:
        consultation = access_consultation(request.user, uuid)
        user = request.user
        if action == "accept":
            services.consultation_accept(consultation=consultation, actor=user)
        elif action == "decline":
            services.consultation_decline(consultation=consultation, actor=user)
        elif action == "cancel":
            reason = validated(ConsultationReasonInput, request.data)["reason"]
            services.consultation_cancel(consultation=consultation, actor=user, reason=reason)
        else:
            text = validated(ConsultationConclusionInput, request.data)["conclusion"]
            services.consultation_conclude(consultation=consultation, actor=user, conclusion=text)
        return Response(_detail(request, access_consultation(user, uuid)))


ACT_SCHEMA = {200: ConsultationDetailOutput, **ERRORS}


class ConsultationAcceptView(_ActView):
    @extend_schema(request=None, responses=ACT_SCHEMA)
    def post(self, request: Request, uuid: str) -> Response:
        """Accept an invitation: you may then see the studies and join the room."""
        return self.run(request, uuid, "accept")


class ConsultationDeclineView(_ActView):
    @extend_schema(request=None, responses=ACT_SCHEMA)
    def post(self, request: Request, uuid: str) -> Response:
        """Decline an invitation."""
        return self.run(request, uuid, "decline")


class ConsultationCancelView(_ActView):
    @extend_schema(request=ConsultationReasonInput, responses=ACT_SCHEMA)
    def post(self, request: Request, uuid: str) -> Response:
        """Cancel an open consultation (the requester or the lead), with a reason."""
        return self.run(request, uuid, "cancel")


class ConsultationConcludeView(_ActView):
    @extend_schema(request=ConsultationConclusionInput, responses=ACT_SCHEMA)
    def post(self, request: Request, uuid: str) -> Response:
        """Write and sign the conclusion (the lead consultant, while live)."""
        return self.run(request, uuid, "conclude")


class ConsultationMessagesView(_ConsultationView):
    @extend_schema(
        parameters=[OpenApiParameter("after", OpenApiTypes.INT)],
        responses={200: ConsultationMessageOutput(many=True), 404: DomainErrorOutput},
    )
    def get(self, request: Request, uuid: str) -> Response:
        """The transcript after sequence number ``after``, in order (at most 500)."""
        consultation = access_consultation(request.user, uuid)
        after = validated(ConsultationMessagesFilter, request.query_params)["after"]
        return Response(
            [message_out(m, consultation.uuid) for m in messages_after(consultation, after)]
        )


class ConsultationAnnotationsView(_ConsultationView):
    @extend_schema(responses={200: ConsultationAnnotationOutput(many=True), 404: DomainErrorOutput})
    def get(self, request: Request, uuid: str) -> Response:
        """The shapes drawn on the images in this consultation."""
        consultation = access_consultation(request.user, uuid)
        return Response(
            ConsultationAnnotationOutput(consultation_annotations(consultation), many=True).data
        )


class PatientConsultationsView(_ConsultationView):
    @extend_schema(responses={200: ConsultationOutput(many=True), 404: DomainErrorOutput})
    def get(self, request: Request, uuid: str) -> Response:
        """The patient's concluded consultations you may read (the patient's record)."""
        patient = access_patient(request.user, uuid)
        return Response(
            ConsultationOutput(patient_consultations(request.user, patient), many=True).data
        )
