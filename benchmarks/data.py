"""Synthetic instances for the benchmark and the request bodies that carry them.

One CT series is generated once (``studies.synthetic.ct_study``) and written to
disk. Each run sends a *variant*: the same bytes with the study, series and
SOP Instance UIDs changed in their last digits (same length, so the files stay
valid), so no run ever re-sends what a server already holds.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from studies.synthetic import PatientSpec, ct_study, dataset_to_bytes, demo_patients

TAIL = 7  # digits of a UID's last component rewritten per variant
COPY_BASE = 1_000_000  # variants are numbered below this, copies from it


@dataclass(frozen=True)
class SliceFile:
    path: Path
    sop_instance_uid: str


@dataclass(frozen=True)
class CtSeries:
    """A CT series on disk: its UIDs and one file per slice."""

    study_instance_uid: str
    series_instance_uid: str
    slices: list[SliceFile]

    @property
    def size_bytes(self) -> int:
        return sum(s.path.stat().st_size for s in self.slices)


def write_ct(directory: Path, *, slices: int, patient: PatientSpec | None = None) -> CtSeries:
    """Generate a ``slices``-slice 512×512 CT into ``directory``, one file per slice."""
    directory.mkdir(parents=True, exist_ok=True)
    files: list[SliceFile] = []
    study_uid = series_uid = ""
    for index, dataset in enumerate(ct_study(patient or demo_patients()[0], slices=slices)):
        path = directory / f"{index:04d}.dcm"
        path.write_bytes(dataset_to_bytes(dataset))
        files.append(SliceFile(path, str(dataset.SOPInstanceUID)))
        study_uid, series_uid = str(dataset.StudyInstanceUID), str(dataset.SeriesInstanceUID)
    return CtSeries(study_uid, series_uid, files)


def variant_uid(uid: str, number: int) -> str:
    """Return ``uid`` with the tail of its last component replaced by ``number``."""
    last = uid.rsplit(".", 1)[-1]
    if len(last) <= TAIL or number >= 10**TAIL:
        raise ValueError(f"cannot derive a variant of {uid!r}")
    return uid[:-TAIL] + f"{number:0{TAIL}d}"


def patch_uids(data: bytes, replacements: dict[str, str]) -> bytes:
    """Replace UIDs of equal length in a Part 10 file's bytes."""
    for old, new in replacements.items():
        if len(old) != len(new):
            raise ValueError("a replacement UID must keep the length")
        data = data.replace(old.encode("ascii"), new.encode("ascii"))
    return data


@dataclass(frozen=True)
class Variant:
    """A copy of a series under new UIDs, with its instances' bytes in memory."""

    study_instance_uid: str
    series_instance_uid: str
    payloads: list[bytes]

    @property
    def size_bytes(self) -> int:
        return sum(len(p) for p in self.payloads)


def make_variant(series: CtSeries, number: int) -> Variant:
    """Return series variant ``number`` (1…): new study, series and SOP Instance UIDs."""
    study = variant_uid(series.study_instance_uid, number)
    series_uid = variant_uid(series.series_instance_uid, number)
    payloads = []
    for one in series.slices:
        replacements = {
            series.study_instance_uid: study,
            series.series_instance_uid: series_uid,
            one.sop_instance_uid: variant_uid(one.sop_instance_uid, number),
        }
        payloads.append(patch_uids(one.path.read_bytes(), replacements))
    return Variant(study, series_uid, payloads)


def copies(template: SliceFile, series: CtSeries, number: int, count: int) -> Iterator[bytes]:
    """Yield ``count`` instances of one new study made from one slice, built one at a time."""
    if count > 10**TAIL - COPY_BASE:
        raise ValueError(f"at most {10**TAIL - COPY_BASE} copies")
    data = template.path.read_bytes()
    study = variant_uid(series.study_instance_uid, number)
    series_uid = variant_uid(series.series_instance_uid, number)
    base = {series.study_instance_uid: study, series.series_instance_uid: series_uid}
    for index in range(count):
        # Above the variant numbers, so no copy takes the UID of a variant's slice.
        sop = variant_uid(template.sop_instance_uid, COPY_BASE + index)
        yield patch_uids(data, {**base, template.sop_instance_uid: sop})


def new_boundary() -> str:
    return f"bench-{secrets.token_hex(12)}"


def stow_content_type(boundary: str) -> str:
    return f'multipart/related; type="application/dicom"; boundary={boundary}'


def _part_header(boundary: str) -> bytes:
    return f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii")


def multipart_length(boundary: str, sizes: Sequence[int]) -> int:
    """Return the length of the multipart body of parts of ``sizes`` bytes."""
    closing = len(f"--{boundary}--\r\n")
    return sum(len(_part_header(boundary)) + size + 2 for size in sizes) + closing


def multipart_chunks(boundary: str, payloads: Iterator[bytes] | Sequence[bytes]) -> Iterator[bytes]:
    """Yield a multipart/related body piece by piece; nothing but one part is held."""
    header = _part_header(boundary)
    for payload in payloads:
        yield header
        yield payload
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode("ascii")


class StreamBody:
    """A request body read from a generator, with a known length.

    ``requests`` sends a file-like object with ``__len__`` as a Content-Length
    body, reading it block by block, so a gigabyte body is never in memory.
    """

    def __init__(self, chunks: Iterator[bytes], length: int):
        self._chunks = chunks
        self._length = length
        self._current = b""
        self._offset = 0
        self.sent = 0

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        """Return up to ``size`` bytes (all that is left if negative), copying only those."""
        wanted = self._length if size < 0 else size
        pieces: list[bytes] = []
        while wanted > 0:
            if self._offset >= len(self._current):
                following = next(self._chunks, None)
                if following is None:
                    break
                self._current, self._offset = following, 0
                continue
            piece = self._current[self._offset : self._offset + wanted]
            self._offset += len(piece)
            wanted -= len(piece)
            pieces.append(piece)
        out = b"".join(pieces)
        self.sent += len(out)
        return out


def stream_body(boundary: str, payloads: Sequence[bytes]) -> StreamBody:
    return StreamBody(
        multipart_chunks(boundary, payloads),
        multipart_length(boundary, [len(p) for p in payloads]),
    )


def generated_body(
    boundary: str, make: Callable[[], Iterator[bytes]], count: int, size: int
) -> StreamBody:
    """Return a body of ``count`` parts of ``size`` bytes each, generated while it is sent."""
    return StreamBody(
        multipart_chunks(boundary, make()), multipart_length(boundary, [size] * count)
    )
