"""``/api/recognition/<StudyInstanceUID>/``: is this prior study recognizable here, and why.

GET answers the evaluation for one of the caller's institutions, the decisions
the caller may read, the coded reasons and the panel's texts (translated here,
so ``static/js/recognition-panel.js`` holds no words). POST records 互认 / 不互认.
A study the caller may not see is a 404, as if it did not exist.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hospitals.api.common import IsPerson, validated
from hospitals.models import Institution
from referrals.api.common import DomainErrorOutput, DomainErrorsAsStatus, InstitutionBrief
from referrals.recognition import (
    deciding_institutions,
    evaluate_recognition,
    recognition_decide,
    recognition_link_repeat,
    study_quality_set,
)
from referrals.recognition.services import quality_reviewer_institutions
from referrals.recognition_models import (
    OTHER_TEXT_MAX,
    QualityStatus,
    RecognitionDecision,
    RepeatReason,
)
from referrals.selectors import (
    access_decision,
    access_study,
    visible_decisions,
    visible_referrals,
    visible_studies,
)
from studies.models import Study

ERRORS = {
    400: DomainErrorOutput,
    403: DomainErrorOutput,
    404: DomainErrorOutput,
    409: DomainErrorOutput,
}


class DecisionOutput(serializers.ModelSerializer[RecognitionDecision]):
    decided_by = serializers.SerializerMethodField()
    institution = InstitutionBrief()
    decision = serializers.CharField(help_text="recognized or not_recognized")
    decision_label = serializers.CharField(source="get_decision_display")
    reason_labels = serializers.ListField(child=serializers.CharField())
    repeat_study = serializers.CharField(
        source="repeat_study.study_instance_uid", read_only=True, allow_null=True
    )

    class Meta:
        model = RecognitionDecision
        fields = [
            "uuid",
            "decision",
            "decision_label",
            "reasons",
            "reason_labels",
            "other_text",
            "repeat_study",
            "saving_yuan",
            "decided_by",
            "institution",
            "decided_at",
        ]

    def get_decided_by(self, decision: RecognitionDecision) -> str:
        user = decision.decided_by
        return user.get_full_name() or user.get_username()


class DecisionInput(serializers.Serializer[Any]):
    decision = serializers.ChoiceField(choices=RecognitionDecision.Decision.choices)
    reasons = serializers.ListField(
        child=serializers.ChoiceField(choices=RepeatReason.choices), default=list, max_length=9
    )
    other_text = serializers.CharField(
        allow_blank=True, default="", max_length=OTHER_TEXT_MAX, trim_whitespace=True
    )
    repeat_study = serializers.CharField(
        required=False, max_length=64, help_text="StudyInstanceUID of the exam done anyway."
    )
    referral = serializers.UUIDField(required=False)
    institution = serializers.UUIDField(
        required=False, help_text="Where you decide; needed only when you work at several."
    )


class QualityInput(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=QualityStatus.Status.choices)
    note = serializers.CharField(allow_blank=True, default="", max_length=200)


class RepeatInput(serializers.Serializer[Any]):
    repeat_study = serializers.CharField(max_length=64)


def panel_labels() -> dict[str, str]:
    """Return the recognition panel's texts in the request's language."""
    return {
        "title": _("Mutual recognition (互认)"),
        "recognizable": _("Recognizable"),
        "not_recognizable": _("Not recognizable"),
        "own_study": _("Your institution's own study"),
        "why": _("Why"),
        "quality": _("Quality control"),
        "decide": _("Your decision"),
        "recognized": _("Recognize (互认)"),
        "not_recognized": _("Do not recognize (不互认)"),
        "reasons": _("Reasons for repeating the exam"),
        "other_text": _("Other reason (at most %(max)s characters)") % {"max": OTHER_TEXT_MAX},
        "save": _("Save decision"),
        "saved": _("Decision saved."),
        "failed": _("The decision was not saved."),
        "decisions": _("Decisions"),
        "no_decisions": _("No decision yet."),
        "saving": _("Saving: ¥{amount}"),
        "by": _("{who}, {institution}, {when}"),
        "repeat": _("Repeat exam: {uid}"),
        "cannot_decide": _("Only a doctor at another institution decides on this study."),
        "loading": _("Loading…"),
        "load_failed": _("The recognition panel could not be loaded."),
    }


def _institution(user: Any, study: Study, uuid: Any) -> Institution | None:
    institutions = deciding_institutions(user, study)
    if uuid is not None:
        found = institutions.filter(uuid=uuid).first()
        if found is None:
            raise ValidationError({"institution": [_("You do not decide at this institution.")]})
        return found
    return institutions.first()


def _state(request: Request, study: Study, institution: Institution | None) -> dict[str, Any]:
    evaluation = evaluate_recognition(study, institution or study.origin)
    quality = QualityStatus.objects.filter(study=study).first()
    quality_status = quality.status if quality else QualityStatus.Status.UNKNOWN
    return {
        "study": {
            "study_instance_uid": study.study_instance_uid,
            "study_date": study.study_date,
            "modalities": study.modalities,
            "origin": InstitutionBrief(study.origin).data,
        },
        "institution": InstitutionBrief(institution).data if institution else None,
        "evaluation": evaluation.as_dict(),
        "can_decide": institution is not None,
        "can_set_quality": quality_reviewer_institutions(request.user, study).exists(),
        "quality": {
            "status": quality_status,
            "label": str(QualityStatus.Status(quality_status).label),
        },
        "decisions": DecisionOutput(visible_decisions(request.user, study), many=True).data,
        "reasons": [{"code": code, "label": str(label)} for code, label in RepeatReason.choices],
        "decision_choices": [
            {"code": code, "label": str(label)}
            for code, label in RecognitionDecision.Decision.choices
        ],
        "other_text_max": OTHER_TEXT_MAX,
        "labels": panel_labels(),
    }


STATE_SCHEMA = inline_serializer(
    "RecognitionState",
    {
        "study": serializers.DictField(),
        "institution": InstitutionBrief(allow_null=True),
        "evaluation": serializers.DictField(),
        "can_decide": serializers.BooleanField(),
        "can_set_quality": serializers.BooleanField(),
        "quality": serializers.DictField(),
        "decisions": DecisionOutput(many=True),
        "reasons": serializers.ListField(child=serializers.DictField()),
        "decision_choices": serializers.ListField(child=serializers.DictField()),
        "other_text_max": serializers.IntegerField(),
        "labels": serializers.DictField(child=serializers.CharField()),
    },
)


class RecognitionView(DomainErrorsAsStatus, APIView):
    permission_classes = [IsPerson]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "institution", OpenApiTypes.UUID, description="Evaluate for this institution."
            )
        ],
        responses={200: STATE_SCHEMA, 404: DomainErrorOutput},
    )
    def get(self, request: Request, study_uid: str) -> Response:
        """Say whether the study is recognizable at your institution, why, and who decided."""
        study = access_study(request.user, study_uid)
        institution = _institution(request.user, study, request.query_params.get("institution"))
        return Response(_state(request, study, institution))

    @extend_schema(request=DecisionInput, responses={201: DecisionOutput, **ERRORS})
    def post(self, request: Request, study_uid: str) -> Response:
        """Record 互认 (recognized) or 不互认 (not recognized, with coded reasons)."""
        study = access_study(request.user, study_uid)
        data = validated(DecisionInput, request.data)
        institution = _institution(request.user, study, data.get("institution"))
        if institution is None:
            return Response(
                {
                    "detail": _("Only a doctor at another institution decides on this study."),
                    "code": "own_study",
                },
                status=status.HTTP_403_FORBIDDEN,
            )
        repeat = None
        if data.get("repeat_study"):
            repeat = (
                visible_studies(request.user)
                .filter(study_instance_uid=data["repeat_study"])
                .first()
            )
            if repeat is None:
                raise ValidationError({"repeat_study": [_("No study you may see has this UID.")]})
        referral = None
        if data.get("referral"):
            referral = visible_referrals(request.user).filter(uuid=data["referral"]).first()
            if referral is None:
                raise ValidationError({"referral": [_("No referral you may see has this UUID.")]})
        decision = recognition_decide(
            study=study,
            actor=request.user,
            institution=institution,
            decision=data["decision"],
            reasons=data["reasons"],
            other_text=data["other_text"],
            repeat_study=repeat,
            referral=referral,
        )
        return Response(DecisionOutput(decision).data, status=status.HTTP_201_CREATED)


class QualityView(DomainErrorsAsStatus, APIView):
    permission_classes = [IsPerson]

    @extend_schema(request=QualityInput, responses={200: STATE_SCHEMA, **ERRORS})
    def post(self, request: Request, study_uid: str) -> Response:
        """Set the study's quality-control result (its institution or the region's QC centre)."""
        study = access_study(request.user, study_uid)
        data = validated(QualityInput, request.data)
        study_quality_set(study=study, status=data["status"], actor=request.user, note=data["note"])
        return Response(_state(request, study, _institution(request.user, study, None)))


class RepeatView(DomainErrorsAsStatus, APIView):
    permission_classes = [IsPerson]

    @extend_schema(request=RepeatInput, responses={200: DecisionOutput, **ERRORS})
    def post(self, request: Request, uuid: str) -> Response:
        """Link the exam done anyway to a 不互认 decision of your institution."""
        decision = access_decision(request.user, uuid)
        data = validated(RepeatInput, request.data)
        repeat = (
            visible_studies(request.user).filter(study_instance_uid=data["repeat_study"]).first()
        )
        if repeat is None:
            raise ValidationError({"repeat_study": [_("No study you may see has this UID.")]})
        decision = recognition_link_repeat(
            decision=decision, repeat_study=repeat, actor=request.user
        )
        return Response(DecisionOutput(decision).data)
