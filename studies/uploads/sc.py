"""Wrap a photo of a film or an ECG strip into a DICOM Secondary Capture image.

A clinic without a digital modality photographs the film on a light box, or
the ECG strip on the desk, and types in who the patient is. The result is a
Secondary Capture Image Storage object (PS3.3 A.8.1, SOP Class
1.2.840.10008.5.1.4.1.1.7), uncompressed Explicit VR Little Endian, with new
UIDs, that enters the archive through the one ingest pipeline like any other.

Choices, and why:

* Only the pixels are taken from the photo: EXIF (GPS position, the phone's
  serial number, the time it was taken) never reaches the object. The EXIF
  orientation is applied first, so the image stands as the doctor saw it.
* Specific Character Set ``ISO_IR 192`` (UTF-8): every character a doctor can
  type round-trips, rare name characters and minority scripts included, with
  no code extension escapes; DICOM JSON and DICOMweb are UTF-8 anyway.
* Modality ``OT``: XC is photography of the patient; a photo of a film or of
  a paper record is "other". Conversion Type (C.8.6.1) ``DF`` digitized film
  for films, ``SD`` scanned document for ECG strips and paper reports.
* Image Type ``DERIVED\\SECONDARY`` (C.7.6.1.1.2); Burned In Annotation
  ``YES`` since films and strips carry printed names; Lossy Image Compression
  ``01`` for a JPEG source (C.7.6.1.1.5), whose pixels were lossy before us.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, BinaryIO

import numpy as np
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from PIL import Image, ImageOps, UnidentifiedImageError
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from studies.ingest import InstanceResult, ReceivedFile, Sender, instances_ingest
from studies.uploads import conf
from studies.uploads.assembly import spool
from studies.uploads.errors import UploadRefused

ACCEPTED_FORMATS = {"JPEG", "PNG"}
DEVICE = "Regional Imaging Cloud"


class PhotoKind(models.TextChoices):
    FILM = "film", gettext_lazy("Photo of a film")
    ECG = "ecg", gettext_lazy("Photo of an ECG strip")
    DOCUMENT = "document", gettext_lazy("Photo of a paper report")


# PS3.3 C.8.6.1 Conversion Type defined terms.
CONVERSION_TYPE = {PhotoKind.FILM: "DF", PhotoKind.ECG: "SD", PhotoKind.DOCUMENT: "SD"}


@dataclass(frozen=True)
class PhotoDetails:
    """Who and what the photo shows, as the doctor typed it."""

    patient_name: str
    patient_id: str
    patient_sex: str = ""  # M, F, O or empty (PS3.3 C.7.1.1)
    patient_birth_date: date | None = None
    kind: str = PhotoKind.FILM
    description: str = ""
    accession_number: str = ""


@dataclass(frozen=True)
class Pixels:
    """Image Pixel module values (PS3.3 C.7.6.3) for an uncompressed image."""

    rows: int
    columns: int
    samples_per_pixel: int
    photometric_interpretation: str
    bits_allocated: int
    data: bytes
    lossy: bool


def read_photo(source: BinaryIO, *, size: int) -> Pixels:
    """Return the photo's pixels, upright, without any of its metadata.

    Raise ``UploadRefused`` for anything but a readable JPEG or PNG within the
    byte and pixel limits.
    """
    if size > conf.photo_max_bytes():
        raise UploadRefused(
            "photo_too_large",
            _("The photo is larger than %(limit)s MB.")
            % {"limit": conf.photo_max_bytes() // (1024 * 1024)},
            status=413,
        )
    not_an_image = UploadRefused(
        "not_an_image",
        _("This is not a JPEG or PNG image: choose a photo."),
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(source)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise not_an_image from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_many_pixels() from exc
    if image.format not in ACCEPTED_FORMATS:
        raise not_an_image
    width, height = image.size
    if width * height > conf.photo_max_pixels():
        raise _too_many_pixels()
    lossy = image.format == "JPEG"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
            upright = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UploadRefused("photo_damaged", _("The image file is damaged or incomplete.")) from exc
    return _pixels(upright, lossy=lossy)


def _too_many_pixels() -> UploadRefused:
    return UploadRefused(
        "photo_too_many_pixels",
        _("The photo has more than %(limit)s megapixels; use a smaller size.")
        % {"limit": conf.photo_max_pixels() // 1_000_000},
        status=413,
    )


def _pixels(image: Image.Image, *, lossy: bool) -> Pixels:
    mode = image.mode
    if mode in {"I;16", "I;16L", "I;16B", "I;16N", "I"}:
        array = np.asarray(image)
        if array.size and (array.min() < 0 or array.max() > 0xFFFF):
            raise UploadRefused("photo_unsupported", _("This kind of image is not supported."))
        return _grey(image, array.astype("<u2").tobytes(), bits=16, lossy=lossy)
    if mode in {"1", "L"}:
        return _grey(image, image.convert("L").tobytes(), bits=8, lossy=lossy)
    if mode == "LA":
        return _grey(image, _on_white(image).convert("L").tobytes(), bits=8, lossy=lossy)
    if mode in {"RGBA", "PA"} or (mode == "P" and "transparency" in image.info):
        rgb = _on_white(image)
    elif mode in {"RGB", "P", "CMYK", "YCbCr", "LAB", "HSV"}:
        rgb = image.convert("RGB")
    else:
        raise UploadRefused("photo_unsupported", _("This kind of image is not supported."))
    return Pixels(
        rows=rgb.height,
        columns=rgb.width,
        samples_per_pixel=3,
        photometric_interpretation="RGB",
        bits_allocated=8,
        data=rgb.tobytes(),  # interleaved R, G, B: Planar Configuration 0
        lossy=lossy,
    )


def _grey(image: Image.Image, data: bytes, *, bits: int, lossy: bool) -> Pixels:
    return Pixels(
        rows=image.height,
        columns=image.width,
        samples_per_pixel=1,
        photometric_interpretation="MONOCHROME2",
        bits_allocated=bits,
        data=data,
        lossy=lossy,
    )


def _on_white(image: Image.Image) -> Image.Image:
    """Flatten transparency onto white, as the photo would look on paper."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def build_secondary_capture(
    pixels: Pixels,
    details: PhotoDetails,
    *,
    institution_name: str = "",
    now: datetime | None = None,
) -> Dataset:
    """Return the Secondary Capture data set, with file meta, for these pixels and details."""
    local = timezone.localtime(now or timezone.now())
    day, time = local.strftime("%Y%m%d"), local.strftime("%H%M%S")
    kind = PhotoKind(details.kind)
    study_uid, series_uid, sop_uid = generate_uid(None), generate_uid(None), generate_uid(None)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    # SOP Common (C.12.1)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = day, time
    ds.TimezoneOffsetFromUTC = local.strftime("%z")
    # Patient (C.7.1.1)
    ds.PatientName = details.patient_name
    ds.PatientID = details.patient_id
    ds.PatientBirthDate = (
        details.patient_birth_date.strftime("%Y%m%d") if details.patient_birth_date else ""
    )
    ds.PatientSex = details.patient_sex
    # General Study (C.7.2.1)
    ds.StudyInstanceUID = study_uid
    ds.StudyDate, ds.StudyTime = day, time
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.AccessionNumber = details.accession_number
    ds.StudyDescription = (details.description or str(kind.label))[:64]
    # General Series (C.7.3.1)
    ds.Modality = "OT"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.SeriesDescription = str(kind.label)[:64]
    # General Equipment (C.7.5.1) and SC Equipment (C.8.6.1)
    ds.InstitutionName = institution_name[:64]
    ds.ConversionType = CONVERSION_TYPE[kind]
    ds.SecondaryCaptureDeviceManufacturer = DEVICE
    # General Image (C.7.6.1) and SC Image (C.8.6.2)
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.ContentDate, ds.ContentTime = day, time
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.BurnedInAnnotation = "YES"
    ds.LossyImageCompression = "01" if pixels.lossy else "00"
    if pixels.lossy:
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.DateOfSecondaryCapture, ds.TimeOfSecondaryCapture = day, time
    # Image Pixel (C.7.6.3)
    ds.SamplesPerPixel = pixels.samples_per_pixel
    ds.PhotometricInterpretation = pixels.photometric_interpretation
    if pixels.samples_per_pixel == 3:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = pixels.rows, pixels.columns
    ds.BitsAllocated = ds.BitsStored = pixels.bits_allocated
    ds.HighBit = pixels.bits_allocated - 1
    ds.PixelRepresentation = 0
    data = pixels.data
    ds.PixelData = data + b"\0" if len(data) % 2 else data  # values have even length (PS3.5 7.1)
    ds["PixelData"].VR = "OW" if pixels.bits_allocated > 8 else "OB"
    return ds


def secondary_capture_create(
    *, photo: BinaryIO, size: int, details: PhotoDetails, sender: Sender, file_name: str = ""
) -> InstanceResult:
    """Wrap the photo into a Secondary Capture object and ingest it for the sender.

    Raise ``UploadRefused`` for a photo that is not an acceptable image; the
    ingest's own refusals come back in the result.
    """
    pixels = read_photo(photo, size=size)
    dataset = build_secondary_capture(pixels, details, institution_name=sender.institution.name)
    out = spool()
    try:
        dataset.save_as(out, enforce_file_format=True)
        length = out.tell()
        out.seek(0)
        digest = _sha256(out)
        received = ReceivedFile(stream=out, size=length, sha256=digest, name=file_name)
        report = instances_ingest(files=[received], sender=sender)
    finally:
        out.close()
    return report.results[0]


def _sha256(stream: Any) -> str:
    digest = hashlib.sha256()
    while piece := stream.read(1024 * 1024):
        digest.update(piece)
    stream.seek(0)
    return digest.hexdigest()
