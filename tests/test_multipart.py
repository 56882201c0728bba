"""The streaming multipart/related reader, fed in awkward pieces."""

from __future__ import annotations

import hashlib
import random

import pytest

from studies import multipart
from studies.multipart import MultipartError, MultipartReader, TooLarge

BOUNDARY = "bnd-42"
# Bytes that look like pieces of a delimiter, so a part's body tests the search.
TRICKY = [
    b"\r\n",
    b"\r",
    b"-",
    b"--",
    b"--bnd",
    b"--bnd-4",
    b"\r\n--bnd-4",
    b"\r\n-",
    b"x",
    b"\x00",
]


class Trickle:
    """A stream that returns fewer bytes than asked, in random amounts."""

    def __init__(self, data: bytes, rnd: random.Random):
        self.data, self.pos, self.rnd = data, 0, rnd

    def read(self, size: int = -1) -> bytes:
        count = min(size, self.rnd.choice([1, 2, 3, 5, 17, 64, size]))
        piece = self.data[self.pos : self.pos + count]
        self.pos += len(piece)
        return piece


def body_of(parts: list[bytes], *, preamble: bytes = b"", padding: bytes = b"") -> bytes:
    out = preamble
    for part in parts:
        out += f"--{BOUNDARY}".encode() + padding + b"\r\nContent-Type: application/dicom\r\n\r\n"
        out += part + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def read_all(data: bytes, seed: int, **kwargs: int) -> list[tuple[bytes, int, str]]:
    reader = MultipartReader(Trickle(data, random.Random(seed)), BOUNDARY, **kwargs)
    found = []
    for part in reader.parts():
        found.append((part.stream.read(), part.size, part.sha256))
        part.close()
    return found


@pytest.mark.parametrize("seed", range(40))
def test_it_returns_every_part_exactly_whatever_the_pieces(seed: int, monkeypatch):
    rnd = random.Random(seed)
    monkeypatch.setattr(multipart, "READ_SIZE", rnd.choice([7, 64, 4096]))
    parts = [
        b"".join(rnd.choice(TRICKY) for _ in range(rnd.randint(0, 200)))
        for _ in range(rnd.randint(1, 5))
    ]
    data = body_of(
        parts,
        preamble=rnd.choice([b"", b"a preamble\r\n"]),
        padding=rnd.choice([b"", b" \t"]),
    )
    expected = [(p, len(p), hashlib.sha256(p).hexdigest()) for p in parts]
    assert read_all(data, seed) == expected


def test_a_long_preamble_is_skipped(monkeypatch):
    monkeypatch.setattr(multipart, "READ_SIZE", 1000)
    data = body_of([b"dicom"], preamble=b"p" * (multipart.MAX_HEADER_BYTES * 3) + b"\r\n")
    assert [found for found, _size, _sha in read_all(data, 1)] == [b"dicom"]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (body_of([b"abc"])[:-12], "no closing boundary"),
        (b"--other\r\n\r\nabc\r\n--other--\r\n", "never occurs"),
        (f"--{BOUNDARY}--\r\n".encode(), "holds no parts"),
        (f"--{BOUNDARY}x\r\n\r\nabc".encode(), "not followed by CRLF"),
        (f"--{BOUNDARY}\r\nContent-Type: a".encode(), "inside a part's headers"),
    ],
)
def test_it_says_what_is_wrong_with_a_broken_body(data: bytes, why: str):
    with pytest.raises(MultipartError, match=why):
        read_all(data, 3)


def test_it_stops_past_the_limit():
    data = body_of([b"x" * 5000])
    with pytest.raises(TooLarge):
        read_all(data, 4, max_bytes=4000)
