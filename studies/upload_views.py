"""Pages for clinic doctors to put studies into the archive from the browser.

``/upload/`` is the drop zone for files, folders and zips (the work happens in
static/js/upload.js against /api/uploads/); ``/upload/photo/`` wraps a photo
of a film or an ECG strip into a DICOM Secondary Capture image.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _

from regional_cloud.audit import client_ip
from studies.ingest import Outcome, Sender
from studies.senders import sending_institutions
from studies.uploads.errors import UploadRefused
from studies.uploads.forms import PhotoForm
from studies.uploads.sc import secondary_capture_create


def upload_strings() -> dict[str, str]:
    """Return every string upload.js shows, in the request's language.

    ``%(name)s`` placeholders are filled in by the script.
    """
    return {
        "waiting": _("Waiting"),
        "preparing": _("Preparing"),
        "uploading": _("Uploading"),
        "resuming": _("Resuming where it stopped"),
        "storing": _("Storing in the archive…"),
        "retrying": _("Connection lost; trying again in %(seconds)s s"),
        "offline": _("Offline; waiting for the connection to come back"),
        "stored": _("Stored"),
        "already_stored": _("Already in the archive"),
        "refused": _("Refused"),
        "failed": _("Failed"),
        "file_changed": _("The file changed while it was being uploaded; it will start again."),
        "network_error": _("The server cannot be reached."),
        "server_error": _("The server answered with an error (%(status)s)."),
        "empty_file": _("The file is empty."),
        "unreadable_file": _("The file cannot be read from this computer."),
        "zip_summary": _("%(stored)s stored, %(already)s already there, %(refused)s refused"),
        "zip_details": _("Each file in the zip"),
        "overall": _("%(done)s of %(total)s files done · %(percent)s"),
        "overall_done": _(
            "Done: %(stored)s stored, %(already)s already there, %(refused)s refused."
        ),
        "resume_hint": _(
            "%(count)s uploads did not finish last time. Choose or drop the same files again "
            "and they continue where they stopped."
        ),
        "skipped": _("%(count)s files skipped (DICOMDIR, programs and system files)."),
        "retry": _("Try again"),
        "leave_warning": _("Uploads are still running. Leave the page?"),
        "folder_error": _("A dropped folder could not be read."),
    }


def _may_send(request: HttpRequest) -> list[Any]:
    institutions = sending_institutions(request.user)
    if not institutions:
        raise PermissionDenied
    return institutions


@login_required
def upload_page(request: HttpRequest) -> HttpResponse:
    institutions = _may_send(request)
    config = {
        "api": reverse("api-upload-list"),
        "parallel_files": 3,
        "parallel_chunks": 2,
        "max_attempts": 8,
        "base_delay_ms": 1000,
        "max_delay_ms": 30000,
    }
    return render(
        request,
        "uploads/upload.html",
        {"institutions": institutions, "strings": upload_strings(), "config": config},
    )


@login_required
def photo_page(request: HttpRequest) -> HttpResponse:
    institutions = _may_send(request)
    form = PhotoForm(request.POST or None, request.FILES or None, institutions=institutions)
    if request.method != "POST":
        return _photo_render(request, form)
    if not form.is_valid():
        return _photo_render(request, form, status=400)
    institution = form.institution()
    sender = Sender(user=request.user, institution=institution, ip=client_ip(request))
    photo = form.cleaned_data["photo"]
    try:
        result = secondary_capture_create(
            photo=photo,
            size=photo.size,
            details=form.details(),
            sender=sender,
            file_name=photo.name or "",
        )
    except UploadRefused as exc:
        form.add_error("photo", exc.reason)
        return _photo_render(request, form, status=exc.status)
    if result.outcome is Outcome.REFUSED:
        form.add_error(None, result.reason)
        return _photo_render(request, form, status=400)
    messages.success(
        request,
        _("The photo is stored in the archive as a DICOM image of %(institution)s.")
        % {"institution": institution.name},
    )
    return redirect("upload_photo")


def _photo_render(request: HttpRequest, form: PhotoForm, *, status: int = 200) -> HttpResponse:
    return render(request, "uploads/photo.html", {"form": form}, status=status)
