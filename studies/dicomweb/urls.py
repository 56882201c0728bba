"""Routes under /dicom-web/ (PS3.18 resource paths, so any DICOMweb client works).

POST on ``studies`` and ``studies/{study}`` is STOW-RS; GET on the same paths
is QIDO-RS (search) and WADO-RS (retrieve). Every view authenticates through
``studies.dicomweb.auth.dicomweb_view``.
"""

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.gzip import gzip_page

from studies.dicomweb import frames, qido, render, stow, wado

STUDY = "studies/<str:study_uid>"
SERIES = f"{STUDY}/series/<str:series_uid>"
INSTANCE = f"{SERIES}/instances/<str:sop_uid>"
FRAMES = f"{INSTANCE}/frames/<str:frame_list>"

# DICOM JSON (searches, metadata) shrinks 10-20 times under gzip: a 400-slice CT's
# metadata is ~1.4 MB, which a clinic's link feels. Streamed answers stay streamed.
# Frames and objects are sent as they are: pixels gain little for the CPU they cost.
json_gzip = gzip_page


# The middleware judges CSRF by the routed view, and these dispatchers are it: exempt
# them, so STOW-RS clients with a token or Basic (the edge agent, Orthanc) are not
# refused; the STOW view itself still checks CSRF for a browser session.
@csrf_exempt
def studies_root(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return stow.stow(request)
    if request.method in ("GET", "HEAD"):
        return json_gzip(qido.search_studies)(request)
    return HttpResponseNotAllowed(["GET", "POST"])


@csrf_exempt
def study_root(request: HttpRequest, study_uid: str) -> HttpResponse:
    if request.method == "POST":
        return stow.stow(request, study_uid=study_uid)
    if request.method in ("GET", "HEAD"):
        return wado.retrieve_study(request, study_uid=study_uid)
    return HttpResponseNotAllowed(["GET", "POST"])


urlpatterns = [
    # QIDO-RS (PS3.18 10.6)
    path("studies", studies_root, name="dicomweb-studies"),
    path("series", json_gzip(qido.search_series), name="dicomweb-search-series"),
    path("instances", json_gzip(qido.search_instances), name="dicomweb-search-instances"),
    path(f"{STUDY}/series", json_gzip(qido.search_series), name="dicomweb-study-series"),
    path(f"{STUDY}/instances", json_gzip(qido.search_instances), name="dicomweb-study-instances"),
    path(f"{SERIES}/instances", json_gzip(qido.search_instances), name="dicomweb-series-instances"),
    # WADO-RS (PS3.18 10.4): objects, metadata, bulk data
    path(STUDY, study_root, name="dicomweb-study"),
    path(SERIES, wado.retrieve_series, name="dicomweb-series"),
    path(INSTANCE, wado.retrieve_instance, name="dicomweb-instance"),
    path(f"{STUDY}/metadata", json_gzip(wado.study_metadata), name="dicomweb-study-metadata"),
    path(f"{SERIES}/metadata", json_gzip(wado.series_metadata), name="dicomweb-series-metadata"),
    path(
        f"{INSTANCE}/metadata", json_gzip(wado.instance_metadata), name="dicomweb-instance-metadata"
    ),
    path(f"{INSTANCE}/bulk/<path:tag_path>", wado.bulkdata, name="dicomweb-bulkdata"),
    # Frames, rendered and thumbnails (PS3.18 10.4.1.1.3-4)
    path(FRAMES, frames.instance_frames, name="dicomweb-frames"),
    path(f"{INSTANCE}/rendered", render.instance_rendered, name="dicomweb-instance-rendered"),
    path(f"{FRAMES}/rendered", render.frames_rendered, name="dicomweb-frames-rendered"),
    path(f"{STUDY}/thumbnail", render.study_thumbnail, name="dicomweb-study-thumbnail"),
    path(f"{SERIES}/thumbnail", render.series_thumbnail, name="dicomweb-series-thumbnail"),
    path(f"{INSTANCE}/thumbnail", render.instance_thumbnail, name="dicomweb-instance-thumbnail"),
    path(f"{FRAMES}/thumbnail", render.frames_thumbnail, name="dicomweb-frames-thumbnail"),
]
