"""Pages of consultations: the list, requesting one, its page, the live room, the transcript.

Every consultation is fetched through ``access_consultation`` (the one
permission filter), so another institution's consultation is a 404. Writes go
through the services; a refused one re-renders the page with the reason.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from referrals.consultation import services
from referrals.consultation.forms import CancelForm, ConcludeForm, RequestForm
from referrals.consultation.messages import ConsultationError
from referrals.consultation.models import Consultation, ConsultationMessage
from referrals.consultation.selectors import (
    access_consultation,
    consultation_actions,
    consultation_annotations,
    ice_servers,
    participants_of,
    room_participant,
    study_to_consult,
    visible_consultations,
)
from referrals.consultation.transcript_pdf import transcript_pdf
from referrals.selectors import access_referral, visible_studies
from regional_cloud.audit import audit
from studies.archive import ArchiveNotFoundError, get_store
from studies.viewer_views import viewer_presets, viewer_strings

State = Consultation.State


def _audit_view(request: HttpRequest, consultation: Consultation, action: str) -> None:
    audit(
        action=action,
        actor=request.user,
        institution=consultation.institution,
        object_type="consultation",
        object_id=consultation.uuid,
        patient_ref=consultation.patient.uuid,
        request=request,
    )


@login_required
@require_safe
def consultation_list(request: HttpRequest) -> HttpResponse:
    consultations = visible_consultations(request.user).order_by("-created_at")[:200]
    return render(request, "consultation/list.html", {"consultations": consultations})


@login_required
@require_http_methods(["GET", "POST"])
def consultation_create(request: HttpRequest) -> HttpResponse:
    """Request a consultation on a study or a referral.

    ``?study=<study UUID or StudyInstanceUID>`` (the patient page and the viewer
    link here), or ``?referral=<referral UUID>``. A study the user may not see is
    a 404, like an unknown one.
    """
    source = request.POST if request.method == "POST" else request.GET
    referral = None
    studies = []
    if source.get("referral"):
        referral = access_referral(request.user, source["referral"])
    elif source.get("study"):
        study = study_to_consult(request.user, source["study"])
        if study is None:
            raise Http404("no such study")
        studies = [study]
    else:
        raise Http404("nothing to consult on")
    form = RequestForm(request.POST or None, user=request.user)
    error = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            consultation = services.consultation_request(
                actor=request.user,
                referral=referral,
                studies=studies,
                consultants=list(data["consultants"]),
                lead=data.get("lead"),
                question=data["question"],
                scheduled_for=data.get("scheduled_for"),
            )
        except ConsultationError as refused:
            error = refused.message
        else:
            messages.success(request, _("Consultation requested: the consultants are told."))
            return redirect("consultation_detail", consultation.uuid)
    context = {"form": form, "referral": referral, "studies": studies, "error": error}
    return render(request, "consultation/create.html", context, status=400 if error else 200)


def _detail_context(request: HttpRequest, consultation: Consultation) -> dict[str, Any]:
    return {
        "consultation": consultation,
        "participants": participants_of(consultation),
        "studies": visible_studies(request.user).filter(consultations=consultation),
        "actions": consultation_actions(request.user, consultation),
        "cancel_form": CancelForm(prefix="cancel"),
        "conclude_form": ConcludeForm(prefix="conclude"),
    }


@login_required
@require_safe
def consultation_detail(request: HttpRequest, consultation_uuid: Any) -> HttpResponse:
    consultation = access_consultation(request.user, consultation_uuid)
    _audit_view(request, consultation, "consultation.view")
    return render(request, "consultation/detail.html", _detail_context(request, consultation))


DONE = {
    "accept": gettext_lazy("You accepted the consultation."),
    "decline": gettext_lazy("You declined the consultation."),
    "cancel": gettext_lazy("The consultation was cancelled."),
    "conclude": gettext_lazy("The conclusion is signed; the consultation is concluded."),
}


@login_required
@require_POST
def consultation_act(request: HttpRequest, consultation_uuid: Any, action: str) -> HttpResponse:
    consultation = access_consultation(request.user, consultation_uuid)
    forms = {"cancel": CancelForm, "conclude": ConcludeForm}
    form = forms[action](request.POST, prefix=action) if action in forms else None
    error, status = None, 400
    if form is not None and not form.is_valid():
        error = " ".join(str(e) for errors in form.errors.values() for e in errors)
    else:
        data = form.cleaned_data if form else {}
        try:
            _act(action, consultation, request.user, data)
        except ConsultationError as refused:
            error, status = refused.message, refused.status
    if error is None:
        messages.success(request, DONE[action])
        if action == "accept":
            return redirect("consultation_room", consultation.uuid)
        return redirect("consultation_detail", consultation.uuid)
    context = _detail_context(request, access_consultation(request.user, consultation_uuid))
    context["error"] = error
    if form is not None:
        context[f"{action}_form"] = form
    return render(request, "consultation/detail.html", context, status=status)


def _act(action: str, consultation: Consultation, user: Any, data: dict[str, Any]) -> None:
    if action == "accept":
        services.consultation_accept(consultation=consultation, actor=user)
    elif action == "decline":
        services.consultation_decline(consultation=consultation, actor=user)
    elif action == "cancel":
        services.consultation_cancel(consultation=consultation, actor=user, reason=data["reason"])
    elif action == "conclude":
        services.consultation_conclude(
            consultation=consultation, actor=user, conclusion=data["conclusion"]
        )
    else:
        raise Http404("no such action")


@login_required
@require_safe
def consultation_room(request: HttpRequest, consultation_uuid: Any) -> HttpResponse:
    """The live room: chat, presence, the synchronized viewer, annotations, audio and video."""
    consultation = access_consultation(request.user, consultation_uuid)
    seat = room_participant(request.user, consultation.uuid)
    if seat is None:
        # Seen but not (or no longer) a room: the consultation's page says why.
        return redirect("consultation_detail", consultation.uuid)
    _audit_view(request, consultation, "consultation.room")
    studies = list(visible_studies(request.user).filter(consultations=consultation))
    if not studies:
        raise Http404("no study to show")
    study = studies[0]
    config = {
        "consultation": str(consultation.uuid),
        "socket": f"/ws/consultations/{consultation.uuid}/",
        "me": seat.me,
        "lead": consultation.lead_id,
        "iceServers": ice_servers(),
        "studyUid": study.study_instance_uid,
        "studies": [s.study_instance_uid for s in studies],
        "dicomweb": reverse("dicomweb-studies").removesuffix("/studies"),
        "presets": viewer_presets(),
        "detailUrl": reverse("consultation_detail", args=[consultation.uuid]),
    }
    context = {
        "consultation": consultation,
        "config": config,
        "strings": viewer_strings(),
        "room_strings": room_strings(),
        "actions": consultation_actions(request.user, consultation),
        "conclude_form": ConcludeForm(prefix="conclude"),
    }
    return render(request, "consultation/room.html", context)


def room_strings() -> dict[str, str]:
    """Return the texts the room's modules show, in the request's language."""
    return {
        "connecting": _("Connecting to the hub…"),
        "lost": _("Connection to the hub lost — reconnecting"),
        "retry_in": _("Trying again in {seconds} s"),
        "connected": _("Connected"),
        "forbidden": _("You may not enter this room."),
        "you": _("you"),
        "here": _("Here now"),
        "alone": _("Nobody else is here yet."),
        "presenting": _("presenting"),
        "present": _("Present my view"),
        "stop_presenting": _("Stop presenting"),
        "follow": _("Follow the presenter"),
        "following": _("Following {name}"),
        "browsing": _("Browsing freely"),
        "no_presenter": _("Nobody presents."),
        "sending": _("sending…"),
        "snapshot": _("Snapshot"),
        "snapshot_too_large": _("The snapshot is larger than 2 MB."),
        "annotation_arrow": _("Arrow"),
        "annotation_length": _("Length"),
        "annotation_text": _("Text"),
        "annotation_prompt": _("Text of the note"),
        "annotated": _("{name} annotated image {sop}"),
        "event_requested": _("{name} requested the consultation"),
        "event_accepted": _("{name} accepted"),
        "event_declined": _("{name} declined"),
        "event_invited": _("{name} invited another consultant"),
        "event_started": _("The consultation started"),
        "event_concluded": _("{name} signed the conclusion"),
        "event_cancelled": _("{name} cancelled the consultation"),
        "presenter_on": _("{name} presents"),
        "presenter_off": _("{name} stopped presenting"),
        "state_concluded": _("The consultation is concluded."),
        "state_cancelled": _("The consultation was cancelled."),
        "call_start": _("Start audio/video"),
        "call_stop": _("Hang up"),
        "call_failed": _("Camera or microphone unavailable."),
        "error": _("Not sent: {detail}"),
    }


@login_required
@require_safe
def consultation_transcript(request: HttpRequest, consultation_uuid: Any) -> HttpResponse:
    """The whole transcript and the conclusion, as a PDF."""
    consultation = access_consultation(request.user, consultation_uuid)
    _audit_view(request, consultation, "consultation.transcript")
    pdf = transcript_pdf(
        consultation, participants_of(consultation), consultation_annotations(consultation)
    )
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="consultation-{consultation.uuid}.pdf"'
    return response


@login_required
@require_safe
def consultation_snapshot(request: HttpRequest, consultation_uuid: Any, seq: int) -> HttpResponse:
    """One snapshot shown in the room's chat, for whoever may see the consultation."""
    consultation = access_consultation(request.user, consultation_uuid)
    message = ConsultationMessage.objects.filter(
        consultation=consultation, seq=seq, kind=ConsultationMessage.Kind.SNAPSHOT
    ).first()
    if message is None or not message.snapshot_key:
        raise Http404("no such snapshot")
    try:
        with get_store().open(message.snapshot_key) as stream:
            png = stream.read()  # at most 2 MB
    except ArchiveNotFoundError as missing:
        raise Http404("snapshot missing from the archive") from missing
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=86400"
    return response
