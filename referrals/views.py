"""Pages of referrals and the patient index.

Every object is fetched through ``referrals.selectors`` (filtered by the one
permission helper), so another institution's referral or patient is a 404,
never a hint that it exists. Writes go through the services; a refused
transition re-renders the page with the reason and the service's status.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_safe

from hospitals.selectors import active_memberships
from referrals import services
from referrals.consultation.selectors import (
    may_request_consultation,
    patient_record_consultations,
)
from referrals.forms import (
    CancelForm,
    CompleteForm,
    ConfirmMatchForm,
    NationalIdForm,
    ReferralForm,
    RejectForm,
    ScheduleForm,
)
from referrals.models import Referral
from referrals.rules import ReferralError
from referrals.selectors import (
    access_patient,
    access_referral,
    allowed_targets,
    confirm_candidates,
    down_referral_patient,
    incoming_referrals,
    linked_records,
    own_patients,
    person_studies,
    referral_actions,
    referral_events,
    search_patients,
    sending_institutions,
    sent_referrals,
    visible_referrals,
    visible_studies,
)
from regional_cloud.audit import audit
from regional_cloud.notifications import notifications_mark_seen_for_url
from studies.identity import IdentityError, patient_link_by_national_id, patient_link_confirm
from studies.models import Patient

State = Referral.State
LIST_LIMIT = 200


# --- referrals ---------------------------------------------------------------------------


@login_required
@require_safe
def referral_list(request: HttpRequest) -> HttpResponse:
    state = request.GET.get("state", "")
    sent = sent_referrals(request.user)
    incoming = incoming_referrals(request.user)
    if state in State.values:
        sent, incoming = sent.filter(state=state), incoming.filter(state=state)
    return render(
        request,
        "referrals/list.html",
        {
            "sent": list(sent.order_by("-created_at")[:LIST_LIMIT]),
            "incoming": list(incoming.order_by("-created_at")[:LIST_LIMIT]),
            "state": state,
            "states": State.choices,
            "can_create": sending_institutions(request.user).exists(),
        },
    )


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def referral_create(request: HttpRequest) -> HttpResponse:
    """Pick a patient, then fill in the referral (saved as a draft or sent at once)."""
    senders = sending_institutions(request.user)
    patient_uuid = request.POST.get("patient") or request.GET.get("patient")
    if not patient_uuid:
        query = request.GET.get("q", "")
        patients = search_patients(request.user, query)
        return render(
            request,
            "referrals/create_pick.html",
            {"patients": list(patients), "q": query, "can_create": senders.exists()},
        )
    patient = (
        own_patients(request.user).filter(issuer__in=senders, uuid=_uuid(patient_uuid)).first()
    )
    if patient is None:
        raise Http404("no such patient")
    from_institution = patient.issuer
    targets = {d: allowed_targets(from_institution, d) for d in Referral.Direction.values}
    studies = list(person_studies(request.user, patient))
    direction = request.GET.get("direction", Referral.Direction.UP)
    form = ReferralForm(
        request.POST or None,
        targets=targets,
        studies=studies,
        initial={"direction": direction if direction in Referral.Direction.values else "up"},
    )
    status = 200
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                referral = services.referral_create(
                    actor=request.user,
                    from_institution=from_institution,
                    to_institution=data["to_institution"],
                    patient=patient,
                    direction=data["direction"],
                    studies=data["studies"],
                    urgency=data["urgency"],
                    clinical_question=data["clinical_question"],
                    skip_reason=data["skip_reason"],
                    treatment_summary=data["treatment_summary"],
                    follow_up_plan=data["follow_up_plan"],
                )
                if request.POST.get("intent") == "submit":
                    services.referral_submit(referral=referral, actor=request.user)
        except ReferralError as error:
            form.add_error(None, error.message)
            status = error.status
        else:
            messages.success(
                request,
                _("Referral sent.")
                if request.POST.get("intent") == "submit"
                else _("Referral saved as a draft."),
            )
            return redirect("referral_detail", referral.uuid)
    elif request.method == "POST":
        status = 400
    return render(
        request,
        "referrals/create.html",
        {"form": form, "patient": patient, "from_institution": from_institution},
        status=status,
    )


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as error:
        raise Http404("not a UUID") from error


def _detail_context(request: HttpRequest, referral: Referral) -> dict[str, Any]:
    user = request.user
    visible = list(
        visible_studies(user)
        .filter(pk__in=referral.studies.values("pk"))
        .select_related("origin")
        .order_by("-study_date")
    )
    priors = []
    if referral.to_institution_id in _my_institution_ids(user) and referral.accepted_at:
        # The patient's other studies the acceptance opened (the look-back), beyond those attached.
        priors = list(
            person_studies(user, referral.patient).exclude(pk__in=[s.pk for s in visible])[:50]
        )
    actions = referral_actions(user, referral)
    return {
        "referral": referral,
        "events": list(referral_events(referral)),
        "studies": visible,
        "priors": priors,
        "attached_count": referral.studies.count(),
        "actions": actions,
        "reject_form": RejectForm(prefix="reject"),
        "cancel_form": CancelForm(prefix="cancel"),
        "schedule_form": ScheduleForm(prefix="schedule"),
        "complete_form": CompleteForm(prefix="complete"),
        "down_patient": down_referral_patient(user, referral) if "refer_down" in actions else None,
    }


def _my_institution_ids(user: Any) -> set[int]:
    return set(active_memberships(user).values_list("institution_id", flat=True))


@login_required
@require_safe
def referral_detail(request: HttpRequest, referral_uuid: Any) -> HttpResponse:
    referral = access_referral(request.user, referral_uuid)
    audit(
        action="referral.view",
        actor=request.user,
        institution=referral.from_institution,
        object_type="referral",
        object_id=referral.uuid,
        patient_ref=referral.patient.uuid,
        request=request,
    )
    notifications_mark_seen_for_url(user=request.user, url=request.path)
    return render(request, "referrals/detail.html", _detail_context(request, referral))


FORMS = {
    "reject": RejectForm,
    "cancel": CancelForm,
    "schedule": ScheduleForm,
    "complete": CompleteForm,
}
DONE = {
    "submit": _("Referral sent."),
    "accept": _("Referral accepted: the studies are open to your side."),
    "reject": _("Referral rejected."),
    "schedule": _("Appointment set."),
    "arrive": _("Arrival recorded."),
    "complete": _("Referral completed."),
    "cancel": _("Referral cancelled."),
}


def _act(action: str, referral: Referral, user: Any, data: dict[str, Any]) -> None:
    if action == "submit":
        services.referral_submit(referral=referral, actor=user)
    elif action == "accept":
        services.referral_accept(referral=referral, actor=user)
    elif action == "reject":
        services.referral_reject(referral=referral, actor=user, reason=data["reason"])
    elif action == "schedule":
        services.referral_schedule(referral=referral, actor=user, when=data["when"])
    elif action == "arrive":
        services.referral_arrive(referral=referral, actor=user)
    elif action == "complete":
        services.referral_complete(referral=referral, actor=user, note=data["note"])
    elif action == "cancel":
        services.referral_cancel(referral=referral, actor=user, reason=data["reason"])
    else:  # pragma: no cover - the URLs name only the actions above
        raise Http404("no such action")


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def referral_act(request: HttpRequest, referral_uuid: Any, action: str) -> HttpResponse:
    """Run one transition from the referral page (a GET goes back to the page)."""
    referral = access_referral(request.user, referral_uuid)
    if request.method != "POST":
        return redirect("referral_detail", referral.uuid)
    form = FORMS[action](request.POST, prefix=action) if action in FORMS else None
    error = None
    status = 400
    if form is not None and not form.is_valid():
        error = " ".join(str(e) for errors in form.errors.values() for e in errors)
    else:
        try:
            _act(action, referral, request.user, form.cleaned_data if form else {})
        except ReferralError as refused:
            error, status = refused.message, refused.status
    if error is None:
        messages.success(request, DONE[str(action)])
        return redirect("referral_detail", referral.uuid)
    referral = access_referral(request.user, referral_uuid)
    context = _detail_context(request, referral)
    context["error"] = error
    if form is not None:
        context[f"{action}_form"] = form
    return render(request, "referrals/detail.html", context, status=status)


# --- the patient index ---------------------------------------------------------------------


@login_required
@require_safe
def patient_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")[:64]
    patients = list(search_patients(request.user, query))
    # The typed query may be a name: the audit keeps only how many were found.
    audit(
        action="patient.search",
        actor=request.user,
        object_type="patient",
        request=request,
        detail={"results": len(patients)},
    )
    return render(
        request,
        "referrals/patient_list.html",
        {
            "patients": patients,
            "q": query,
            "is_doctor": own_patients(request.user).exists()
            or sending_institutions(request.user).exists(),
        },
    )


def _patient_context(request: HttpRequest, patient: Patient) -> dict[str, Any]:
    user = request.user
    by_origin: OrderedDict[Any, list[Any]] = OrderedDict()
    for study in person_studies(user, patient):
        by_origin.setdefault(study.origin, []).append(study)
    referrals = (
        visible_referrals(user)
        .filter(patient__in=_same_person_ids(patient))
        .order_by("-created_at")
    )
    return {
        "patient": patient,
        "records": list(linked_records(user, patient)),
        "by_origin": list(by_origin.items()),
        "referrals": list(referrals[:50]),
        "national_id_form": NationalIdForm(),
        "confirm_form": ConfirmMatchForm(candidates=list(confirm_candidates(user, patient))),
        "can_refer": sending_institutions(user).filter(pk=patient.issuer_id).exists(),
        # Concluded consultations of this person the user may see (the permission filter).
        "consultations": list(patient_record_consultations(user, patient)[:50]),
        "can_consult": may_request_consultation(user),
    }


def _same_person_ids(patient: Patient) -> list[int]:
    if not patient.person_id:
        return [patient.pk]
    return list(Patient.objects.filter(person_id=patient.person_id).values_list("pk", flat=True))


@login_required
@require_safe
def patient_detail(request: HttpRequest, patient_uuid: Any) -> HttpResponse:
    patient = access_patient(request.user, patient_uuid)
    audit(
        action="patient.view",
        actor=request.user,
        institution=patient.issuer,
        object_type="patient",
        object_id=patient.uuid,
        patient_ref=patient.uuid,
        request=request,
    )
    return render(request, "referrals/patient_detail.html", _patient_context(request, patient))


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def patient_link(request: HttpRequest, patient_uuid: Any) -> HttpResponse:
    """Link the patient to a regional person: by resident ID number, or a confirmed match."""
    patient = access_patient(request.user, patient_uuid)
    if request.method != "POST":
        return redirect("patient_detail", patient.uuid)
    context = _patient_context(request, patient)
    error = None
    if request.POST.get("method") == "national_id":
        form = NationalIdForm(request.POST)
        if form.is_valid():
            try:
                patient_link_by_national_id(
                    patient=patient,
                    national_id=form.cleaned_data["national_id"],
                    actor=request.user,
                )
            except IdentityError as refused:
                error = str(refused)
        else:
            error = " ".join(str(e) for e in form.errors.get("national_id", []))
        # The typed number is never sent back to the browser.
    else:
        confirm = ConfirmMatchForm(
            request.POST, candidates=list(confirm_candidates(request.user, patient))
        )
        if confirm.is_valid():
            try:
                patient_link_confirm(
                    patient=patient, other=confirm.cleaned_data["other"], actor=request.user
                )
            except IdentityError as refused:
                error = str(refused)
        else:
            error = _("Choose the patient record to confirm.")
    if error is None:
        messages.success(
            request, _("The records are linked: the person's studies you may see are listed.")
        )
        return redirect(reverse("patient_detail", args=[patient.uuid]))
    context["link_error"] = error
    return render(request, "referrals/patient_detail.html", context, status=400)
