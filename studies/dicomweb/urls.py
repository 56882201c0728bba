"""Routes under /dicom-web/ (PS3.18 resource paths, so any DICOMweb client works)."""

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import path

from studies.dicomweb import stow

UID = "<str:study_uid>"


def studies_root(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return stow.stow(request)
    return HttpResponseNotAllowed(["POST"])


def study_root(request: HttpRequest, study_uid: str) -> HttpResponse:
    if request.method == "POST":
        return stow.stow(request, study_uid=study_uid)
    return HttpResponseNotAllowed(["POST"])


urlpatterns = [
    path("studies", studies_root, name="dicomweb-studies"),
    path(f"studies/{UID}", study_root, name="dicomweb-study"),
]
