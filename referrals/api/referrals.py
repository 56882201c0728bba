"""``/api/referrals/``: create and track referrals, answer them, read their timeline.

Every referral is fetched through ``visible_referrals`` (the one permission
helper), so a referral of other institutions is a 404 like an unknown UUID.
A refused transition answers the service's 400/403/409 with a reason and a code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hospitals.api.common import IsPerson, validated
from hospitals.models import Institution
from referrals import services
from referrals.api.common import (
    DomainErrorOutput,
    DomainErrorsAsStatus,
    InstitutionBrief,
    StudyOutput,
)
from referrals.display import event_label
from referrals.models import Referral, ReferralEvent, Urgency
from referrals.rules import ReferralError
from referrals.selectors import (
    access_referral,
    allowed_targets,
    incoming_referrals,
    own_patients,
    referral_actions,
    referral_events,
    sending_institutions,
    sent_referrals,
    visible_referrals,
    visible_studies,
)
from regional_cloud.audit import audit

ERRORS = {
    400: DomainErrorOutput,
    403: DomainErrorOutput,
    404: DomainErrorOutput,
    409: DomainErrorOutput,
}


class PatientRef(serializers.Serializer[Any]):
    uuid = serializers.UUIDField()
    patient_id = serializers.CharField()
    patient_name = serializers.CharField()
    patient_sex = serializers.CharField()
    patient_birth_date = serializers.CharField()
    issuer = InstitutionBrief()


class EventOutput(serializers.ModelSerializer[ReferralEvent]):
    actor = serializers.SerializerMethodField()
    kind_label = serializers.SerializerMethodField()

    class Meta:
        model = ReferralEvent
        fields = ["at", "actor", "kind", "kind_label", "from_state", "to_state", "note"]

    def get_actor(self, event: ReferralEvent) -> str:
        if event.actor is None:
            return _("System")
        return event.actor.get_full_name() or event.actor.get_username()

    def get_kind_label(self, event: ReferralEvent) -> str:
        return event_label(event.kind)


class ReferralOutput(serializers.ModelSerializer[Referral]):
    patient = PatientRef()
    from_institution = InstitutionBrief()
    to_institution = InstitutionBrief()
    assigned_specialist = serializers.CharField(
        source="assigned_specialist.username", read_only=True, allow_null=True
    )
    state = serializers.CharField(help_text=", ".join(Referral.State.values))
    direction = serializers.CharField(help_text="up or down")
    urgency = serializers.CharField(help_text=", ".join(Urgency.values))
    state_label = serializers.CharField(source="get_state_display")
    direction_label = serializers.CharField(source="get_direction_display")
    urgency_label = serializers.CharField(source="get_urgency_display")
    studies_attached = serializers.SerializerMethodField()

    class Meta:
        model = Referral
        fields = [
            "uuid",
            "state",
            "state_label",
            "direction",
            "direction_label",
            "urgency",
            "urgency_label",
            "patient",
            "from_institution",
            "to_institution",
            "assigned_specialist",
            "clinical_question",
            "skip_reason",
            "treatment_summary",
            "follow_up_plan",
            "rejection_reason",
            "cancellation_reason",
            "scheduled_for",
            "created_at",
            "submitted_at",
            "answer_due_at",
            "accepted_at",
            "closed_at",
            "studies_attached",
        ]

    def get_studies_attached(self, referral: Referral) -> int:
        return referral.studies.count()


class ReferralDetailOutput(ReferralOutput):
    """A referral with the studies the caller may open, its timeline and the caller's actions."""

    studies = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()
    actions = serializers.SerializerMethodField()

    class Meta(ReferralOutput.Meta):
        fields = [*ReferralOutput.Meta.fields, "studies", "events", "actions"]

    @extend_schema_field(StudyOutput(many=True))
    def get_studies(self, referral: Referral) -> list[dict[str, Any]]:
        user = self.context["request"].user
        studies = visible_studies(user).filter(pk__in=referral.studies.values("pk"))
        return StudyOutput(studies.select_related("origin"), many=True).data  # type: ignore[return-value]

    @extend_schema_field(EventOutput(many=True))
    def get_events(self, referral: Referral) -> list[dict[str, Any]]:
        return EventOutput(referral_events(referral), many=True).data  # type: ignore[return-value]

    def get_actions(self, referral: Referral) -> list[str]:
        return referral_actions(self.context["request"].user, referral)


class ReferralCreateInput(serializers.Serializer[Any]):
    """A new referral. ``submit`` sends it at once; otherwise it stays a draft."""

    from_institution = serializers.UUIDField(
        required=False, help_text="Your institution; needed only when you work at several."
    )
    patient = serializers.UUIDField(help_text="One of the referring institution's patients.")
    to_institution = serializers.UUIDField()
    direction = serializers.ChoiceField(choices=Referral.Direction.choices)
    urgency = serializers.ChoiceField(choices=Urgency.choices, default=Urgency.ROUTINE)
    studies = serializers.ListField(
        child=serializers.CharField(max_length=64),
        default=list,
        max_length=50,
        help_text="StudyInstanceUIDs of the patient's studies you may see.",
    )
    clinical_question = serializers.CharField(allow_blank=True, default="", max_length=2000)
    skip_reason = serializers.CharField(allow_blank=True, default="", max_length=200)
    treatment_summary = serializers.CharField(allow_blank=True, default="", max_length=4000)
    follow_up_plan = serializers.CharField(allow_blank=True, default="", max_length=4000)
    assigned_specialist = serializers.CharField(
        required=False, allow_blank=True, help_text="Username of a specialist at the receiver."
    )
    submit = serializers.BooleanField(default=False)


class ReasonInput(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=200, allow_blank=True, default="")


class ScheduleInput(serializers.Serializer[Any]):
    when = serializers.DateTimeField(help_text="The appointment, ISO 8601 with a time zone.")


class NoteInput(serializers.Serializer[Any]):
    note = serializers.CharField(max_length=500, allow_blank=True, default="")


class ReferralFilter(serializers.Serializer[Any]):
    box = serializers.ChoiceField(choices=["all", "sent", "incoming"], default="all")
    state = serializers.ChoiceField(choices=Referral.State.choices, required=False)


class TargetsFilter(serializers.Serializer[Any]):
    direction = serializers.ChoiceField(choices=Referral.Direction.choices)
    from_institution = serializers.UUIDField(required=False)


class TargetOutput(serializers.Serializer[Any]):
    institution = InstitutionBrief()
    needs_skip_reason = serializers.BooleanField()


def sending_institution(user: Any, uuid: Any) -> Institution:
    """Return the caller's sending institution (the only one, or the one named)."""
    institutions = sending_institutions(user)
    if uuid is not None:
        institutions = institutions.filter(uuid=uuid)
    if institutions.count() != 1:
        raise ReferralError(
            _("You work at several institutions: name the one you refer from (from_institution).")
            if uuid is None and institutions.exists()
            else _("You are not a doctor at this institution."),
            status=403 if not institutions.exists() else 400,
            code="from_institution",
        )
    return institutions.get()


class ReferralListView(DomainErrorsAsStatus, generics.GenericAPIView[Referral]):
    """The referrals you may see: sent by or addressed to your institutions."""

    permission_classes = [IsPerson]
    serializer_class = ReferralOutput

    def get_queryset(self) -> QuerySet[Referral]:
        return visible_referrals(self.request.user)

    @extend_schema(
        parameters=[
            OpenApiParameter("box", OpenApiTypes.STR, enum=["all", "sent", "incoming"]),
            OpenApiParameter("state", OpenApiTypes.STR, enum=Referral.State.values),
        ],
        operation_id="referrals_list",
    )
    def get(self, request: Request) -> Response:
        """List referrals: ``box=sent`` yours, ``box=incoming`` to your institutions."""
        query = validated(ReferralFilter, request.query_params)
        referrals = {
            "sent": sent_referrals,
            "incoming": incoming_referrals,
            "all": visible_referrals,
        }[query["box"]](request.user)
        if query.get("state"):
            referrals = referrals.filter(state=query["state"])
        page = self.paginate_queryset(referrals.order_by("-created_at"))
        return self.get_paginated_response(ReferralOutput(page, many=True).data)

    @extend_schema(request=ReferralCreateInput, responses={201: ReferralDetailOutput, **ERRORS})
    def post(self, request: Request) -> Response:
        """Create a referral (a draft, or submitted at once with ``submit``)."""
        data = validated(ReferralCreateInput, request.data)
        from_institution = sending_institution(request.user, data.get("from_institution"))
        patient = own_patients(request.user).filter(uuid=data["patient"]).first()
        if patient is None:
            raise ValidationError({"patient": [_("No patient of yours has this UUID.")]})
        to_institution = Institution.objects.filter(uuid=data["to_institution"]).first()
        if to_institution is None:
            raise ValidationError({"to_institution": [_("No institution has this UUID.")]})
        uids = list(dict.fromkeys(data["studies"]))
        studies = list(visible_studies(request.user).filter(study_instance_uid__in=uids))
        if len(studies) != len(uids):
            raise ReferralError(
                _("Only studies you may see can be attached."), code="study_not_visible"
            )
        specialist = None
        if data.get("assigned_specialist"):
            specialist = (
                get_user_model()
                .objects.filter(username=data["assigned_specialist"], is_active=True)
                .first()
            )
            if specialist is None:
                raise ReferralError(
                    _("The assigned specialist does not work at the receiving institution."),
                    code="specialist_elsewhere",
                )
        with transaction.atomic():
            referral = services.referral_create(
                actor=request.user,
                from_institution=from_institution,
                to_institution=to_institution,
                patient=patient,
                direction=data["direction"],
                studies=studies,
                urgency=data["urgency"],
                clinical_question=data["clinical_question"],
                skip_reason=data["skip_reason"],
                treatment_summary=data["treatment_summary"],
                follow_up_plan=data["follow_up_plan"],
                assigned_specialist=specialist,
            )
            if data["submit"]:
                referral = services.referral_submit(referral=referral, actor=request.user)
        referral = access_referral(request.user, referral.uuid)
        return Response(
            ReferralDetailOutput(referral, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )


class ReferralTargetsView(DomainErrorsAsStatus, APIView):
    """Where you may refer: the institutions the network rules allow from yours."""

    permission_classes = [IsPerson]

    @extend_schema(
        parameters=[
            OpenApiParameter("direction", OpenApiTypes.STR, enum=Referral.Direction.values),
            OpenApiParameter("from_institution", OpenApiTypes.UUID),
        ],
        responses={200: TargetOutput(many=True), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        """List allowed receiving institutions; some need a reason for skipping a level."""
        query = validated(TargetsFilter, request.query_params)
        institution = sending_institution(request.user, query.get("from_institution"))
        targets = allowed_targets(institution, query["direction"])
        return Response(
            TargetOutput(
                [
                    {"institution": t.institution, "needs_skip_reason": t.needs_skip_reason}
                    for t in targets
                ],
                many=True,
            ).data
        )


class ReferralDetailView(DomainErrorsAsStatus, APIView):
    permission_classes = [IsPerson]

    @extend_schema(responses={200: ReferralDetailOutput, 404: DomainErrorOutput})
    def get(self, request: Request, uuid: str) -> Response:
        """Show a referral, its studies you may open, its timeline and what you may do."""
        referral = access_referral(request.user, uuid)
        audit(
            action="referral.view",
            actor=request.user,
            institution=referral.from_institution,
            object_type="referral",
            object_id=referral.uuid,
            patient_ref=referral.patient.uuid,
            request=request,
        )
        return Response(ReferralDetailOutput(referral, context={"request": request}).data)


class ReferralEventsView(DomainErrorsAsStatus, APIView):
    """The timeline alone: small enough to poll."""

    permission_classes = [IsPerson]

    @extend_schema(responses={200: EventOutput(many=True), 404: DomainErrorOutput})
    def get(self, request: Request, uuid: str) -> Response:
        """List the referral's events, oldest first (who, when, what)."""
        referral = access_referral(request.user, uuid)
        return Response(
            {
                "state": referral.state,
                "state_label": referral.get_state_display(),
                "actions": referral_actions(request.user, referral),
                "events": EventOutput(referral_events(referral), many=True).data,
            }
        )


Act = Callable[[Referral, Any, dict[str, Any]], Referral]


class _TransitionView(DomainErrorsAsStatus, APIView):
    """One transition: fetch what the caller may see, call one service, answer the detail."""

    permission_classes = [IsPerson]

    def run(
        self,
        request: Request,
        uuid: str,
        act: Act,
        input_class: type[serializers.Serializer[Any]] | None = None,
    ) -> Response:
        referral = access_referral(request.user, uuid)
        data = validated(input_class, request.data) if input_class else {}
        act(referral, request.user, data)
        referral = access_referral(request.user, uuid)
        return Response(ReferralDetailOutput(referral, context={"request": request}).data)


TRANSITION_SCHEMA = {200: ReferralDetailOutput, **ERRORS}


class ReferralSubmitView(_TransitionView):
    @extend_schema(request=None, responses=TRANSITION_SCHEMA)
    def post(self, request: Request, uuid: str) -> Response:
        """Send a draft to the receiving institution."""
        return self.run(
            request, uuid, lambda r, u, d: services.referral_submit(referral=r, actor=u)
        )


class ReferralAcceptView(_TransitionView):
    @extend_schema(request=None, responses=TRANSITION_SCHEMA)
    def post(self, request: Request, uuid: str) -> Response:
        """Accept: your side gains access to the attached studies and the patient's priors."""
        return self.run(
            request, uuid, lambda r, u, d: services.referral_accept(referral=r, actor=u)
        )


class ReferralRejectView(_TransitionView):
    @extend_schema(request=ReasonInput, responses=TRANSITION_SCHEMA)
    def post(self, request: Request, uuid: str) -> Response:
        """Reject with a reason."""
        return self.run(
            request,
            uuid,
            lambda r, u, d: services.referral_reject(referral=r, actor=u, reason=d["reason"]),
            ReasonInput,
        )


class ReferralScheduleView(_TransitionView):
    @extend_schema(request=ScheduleInput, responses=TRANSITION_SCHEMA)
    def post(self, request: Request, uuid: str) -> Response:
        """Set (or move) the appointment."""
        return self.run(
            request,
            uuid,
            lambda r, u, d: services.referral_schedule(referral=r, actor=u, when=d["when"]),
            ScheduleInput,
        )


class ReferralArriveView(_TransitionView):
    @extend_schema(request=None, responses=TRANSITION_SCHEMA)
    def post(self, request: Request, uuid: str) -> Response:
        """Record that the patient arrived."""
        return self.run(
            request, uuid, lambda r, u, d: services.referral_arrive(referral=r, actor=u)
        )


class ReferralCompleteView(_TransitionView):
    @extend_schema(request=NoteInput, responses=TRANSITION_SCHEMA)
    def post(self, request: Request, uuid: str) -> Response:
        """Complete the referral; access ends after the region's grace period."""
        return self.run(
            request,
            uuid,
            lambda r, u, d: services.referral_complete(referral=r, actor=u, note=d["note"]),
            NoteInput,
        )


class ReferralCancelView(_TransitionView):
    @extend_schema(request=ReasonInput, responses=TRANSITION_SCHEMA)
    def post(self, request: Request, uuid: str) -> Response:
        """Cancel your referral with a reason."""
        return self.run(
            request,
            uuid,
            lambda r, u, d: services.referral_cancel(referral=r, actor=u, reason=d["reason"]),
            ReasonInput,
        )
