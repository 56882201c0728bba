"""The archive store, each behaviour on both stores: a folder in tmp_path and S3 on moto."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

from regional_cloud.env import parse_archive_url
from studies.archive import (
    ArchiveConflictError,
    ArchiveIntegrityError,
    ArchiveNotFoundError,
    ArchiveStore,
    ArchiveUnavailableError,
    LocalFolderStore,
    S3Store,
    StoredObject,
    get_store,
    instance_key,
    reset_store,
    store_from_config,
)
from tests.fixtures.s3 import free_port

MiB = 1024 * 1024
KEY = "dicom/1.2.840.1/1.2.840.1.1/1.2.840.1.1.1.dcm"


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArchiveStore:
    """A fresh, empty store: a folder, or a bucket on the session's moto server."""
    if request.param == "local":
        return LocalFolderStore(tmp_path / "archive")
    url = request.getfixturevalue("s3_archive_url")
    return store_from_config(parse_archive_url(url))


def raw_client(store: S3Store) -> Minio:
    """A minio client of our own on the store's server, to look behind the store's back."""
    config = store.config
    return Minio(
        config.endpoint,
        access_key=config.access_key,
        secret_key=config.secret_key,
        secure=config.secure,
    )


def everything_stored(store: ArchiveStore) -> list[str]:
    """Every name the backend holds, temporaries included."""
    if isinstance(store, LocalFolderStore):
        if not store.root.exists():
            return []
        return sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*"))
    assert isinstance(store, S3Store)
    client = raw_client(store)
    if not client.bucket_exists(store.bucket):
        return []
    return sorted(
        str(item.object_name) for item in client.list_objects(store.bucket, recursive=True)
    )


def stored_files(store: ArchiveStore) -> list[str]:
    """Like everything_stored, without the folder store's directories."""
    if isinstance(store, LocalFolderStore):
        return [name for name in everything_stored(store) if (store.root / name).is_file()]
    return everything_stored(store)


def overwrite_behind_the_store(store: ArchiveStore, key: str, data: bytes) -> None:
    """Replace the bytes at ``key`` the way bit rot or a stray tool would."""
    if isinstance(store, LocalFolderStore):
        (store.root / key).write_bytes(data)
        return
    assert isinstance(store, S3Store)
    recorded = store.stat(key)
    assert recorded is not None
    # Keep the recorded digest: the damage is in the bytes only.
    raw_client(store).put_object(
        store.bucket,
        key,
        io.BytesIO(data),
        len(data),
        metadata={"x-amz-meta-sha256": str(recorded.sha256)},
    )


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@functools.lru_cache(maxsize=1)
def _pattern_block(index: int) -> bytes:
    return hashlib.sha256(index.to_bytes(8, "big")).digest() * (MiB // 32)


class PatternStream(io.RawIOBase):
    """``size`` bytes made up on demand, never all in memory: each MiB differs.

    Reads return at most what is left of the current MiB, like a socket
    returning what has arrived.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.position = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        offset = self.position % MiB
        count = min(MiB - offset, self.size - self.position)
        if size is not None and size >= 0:
            count = min(count, size)
        if count <= 0:
            return b""
        data = _pattern_block(self.position // MiB)[offset : offset + count]
        self.position += count
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def pattern_sha256(size: int) -> str:
    digest = hashlib.sha256()
    stream = PatternStream(size)
    while chunk := stream.read(MiB):
        digest.update(chunk)
    return digest.hexdigest()


class FailingStream(PatternStream):
    """A stream that breaks after ``size`` bytes, like a client hanging up mid-upload."""

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        if not data:
            raise ConnectionResetError("the client went away")
        return data


def test_it_round_trips_bytes(store: ArchiveStore) -> None:
    data = os.urandom(3 * MiB + 17)

    stored = store.put(KEY, io.BytesIO(data), size=len(data), sha256=sha256_of(data))

    assert stored == StoredObject(key=KEY, size=len(data), sha256=sha256_of(data))
    with store.open(KEY) as stream:
        assert stream.read() == data
    assert b"".join(store.iter_chunks(KEY, chunk_size=MiB)) == data
    assert all(len(chunk) <= MiB for chunk in store.iter_chunks(KEY, chunk_size=MiB))
    assert store.read_range(KEY, 1000, 5000) == data[1000:6000]
    assert store.read_range(KEY, len(data) - 10, 100) == data[-10:]
    assert store.read_range(KEY, len(data), 100) == b""
    assert store.read_range(KEY, 5, 0) == b""
    stat = store.stat(KEY)
    assert stat is not None
    assert stat.size == len(data)
    assert stat.sha256 in {sha256_of(data), None}
    assert store.exists(KEY)
    assert store.hash_object(KEY) == sha256_of(data)
    assert stored_files(store) == [KEY]


def test_it_stores_an_empty_object(store: ArchiveStore) -> None:
    stored = store.put("empty/object", io.BytesIO(b""), size=0)

    assert stored.size == 0
    assert stored.sha256 == sha256_of(b"")
    with store.open("empty/object") as stream:
        assert stream.read() == b""


@pytest.mark.s3
def test_it_records_the_sha256_in_s3_metadata(s3_archive_url: str) -> None:
    store = store_from_config(parse_archive_url(s3_archive_url))
    assert isinstance(store, S3Store)
    data = b"metadata"
    store.put(KEY, io.BytesIO(data))

    info = raw_client(store).stat_object(store.bucket, KEY)

    assert info.metadata["x-amz-meta-sha256"] == sha256_of(data)
    stat = store.stat(KEY)
    assert stat is not None
    assert stat.sha256 == sha256_of(data)


def _vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _measure_peak(action: Callable[[], object]) -> tuple[int, int | None]:
    """Run ``action``; return the growth of traced Python memory and of RSS at their peaks."""
    rss_before: int | None = None
    try:
        # Writing 5 resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0).
        Path("/proc/self/clear_refs").write_text("5")
        rss_before = _vm_kib("VmRSS")
    except OSError:
        rss_before = None
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        action()
        traced_growth = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    rss_growth = None if rss_before is None else (_vm_kib("VmHWM") - rss_before) * 1024
    return traced_growth, rss_growth


@pytest.mark.parametrize("announced", [True, False], ids=["size-given", "size-unknown"])
def test_it_streams_a_large_object_in_bounded_memory(store: ArchiveStore, announced: bool) -> None:
    size = 64 * MiB
    expected = pattern_sha256(size)
    given: dict[str, Any] = {"size": size, "sha256": expected} if announced else {}

    traced, rss = _measure_peak(lambda: store.put("large/object", PatternStream(size), **given))

    assert traced < 40 * MiB, f"put held {traced / MiB:.1f} MiB of Python objects at its peak"
    if rss is not None:
        assert rss < 40 * MiB, f"put grew the peak RSS by {rss / MiB:.1f} MiB"
    assert store.hash_object("large/object") == expected

    traced, rss = _measure_peak(lambda: store.hash_object("large/object"))

    assert traced < 16 * MiB, f"reading held {traced / MiB:.1f} MiB at its peak"
    if rss is not None:
        assert rss < 40 * MiB


def test_it_refuses_a_wrong_sha256_and_leaves_nothing(store: ArchiveStore) -> None:
    data = os.urandom(MiB)

    with pytest.raises(ArchiveIntegrityError, match="SHA-256"):
        store.put(KEY, io.BytesIO(data), sha256=sha256_of(b"something else"))

    assert not store.exists(KEY)
    assert stored_files(store) == []


def test_it_refuses_a_wrong_sha256_on_a_multipart_upload(store: ArchiveStore) -> None:
    size = 20 * MiB  # several parts in S3

    with pytest.raises(ArchiveIntegrityError):
        store.put(KEY, PatternStream(size), sha256="0" * 64)

    assert not store.exists(KEY)
    assert stored_files(store) == []


@pytest.mark.parametrize("claimed", [5, 200])
def test_it_refuses_a_wrong_size_and_leaves_nothing(store: ArchiveStore, claimed: int) -> None:
    data = os.urandom(100)

    with pytest.raises(ArchiveIntegrityError, match="bytes"):
        store.put(KEY, io.BytesIO(data), size=claimed)

    assert not store.exists(KEY)
    assert stored_files(store) == []


def test_it_leaves_nothing_when_the_source_breaks(store: ArchiveStore) -> None:
    with pytest.raises(ConnectionResetError):
        store.put(KEY, FailingStream(10 * MiB))

    assert not store.exists(KEY)
    assert stored_files(store) == []


def test_it_accepts_the_same_bytes_again(store: ArchiveStore) -> None:
    data = os.urandom(1000)
    first = store.put(KEY, io.BytesIO(data))

    again = store.put(KEY, io.BytesIO(data), size=len(data), sha256=sha256_of(data))

    assert again == first
    assert store.hash_object(KEY) == sha256_of(data)
    assert stored_files(store) == [KEY]


def test_it_refuses_different_bytes_at_an_occupied_key(store: ArchiveStore) -> None:
    original = os.urandom(1000)
    store.put(KEY, io.BytesIO(original))

    with pytest.raises(ArchiveConflictError):
        store.put(KEY, io.BytesIO(os.urandom(1000)))
    with pytest.raises(ArchiveConflictError):
        store.put(KEY, io.BytesIO(original + b"x"))

    assert store.hash_object(KEY) == sha256_of(original)
    assert stored_files(store) == [KEY]


def test_it_overwrites_when_asked(store: ArchiveStore) -> None:
    store.put(KEY, io.BytesIO(b"first version"))

    stored = store.put(KEY, io.BytesIO(b"second"), overwrite=True)

    assert stored.size == len(b"second")
    with store.open(KEY) as stream:
        assert stream.read() == b"second"
    assert stored_files(store) == [KEY]


def test_it_keeps_the_old_object_when_an_overwrite_fails_verification(
    store: ArchiveStore,
) -> None:
    store.put(KEY, io.BytesIO(b"good"))

    with pytest.raises(ArchiveIntegrityError):
        store.put(KEY, io.BytesIO(b"bad"), sha256="f" * 64, overwrite=True)

    with store.open(KEY) as stream:
        assert stream.read() == b"good"


BAD_KEYS = [
    "",
    "/absolute/path",
    "../escape",
    "dicom/../../escape",
    "dicom/./x",
    "dicom//x",
    "dicom/x/",
    ".tmp/x",
    "dicom/.hidden",
    "with space",
    "back\\slash",
    "中文",
    "x" * 1025,
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_it_refuses_bad_keys(store: ArchiveStore, key: str) -> None:
    with pytest.raises(ValueError, match="archive key"):
        store.put(key, io.BytesIO(b"data"))
    with pytest.raises(ValueError, match="archive key"):
        store.stat(key)
    with pytest.raises(ValueError, match="archive key"):
        store.delete(key)
    with pytest.raises(ValueError, match="archive key"), store.open(key):
        pass

    assert stored_files(store) == []


def test_it_refuses_a_malformed_expected_sha256(store: ArchiveStore) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        store.put(KEY, io.BytesIO(b"data"), sha256="not-a-digest")


def test_it_lists_keys_by_prefix(store: ArchiveStore) -> None:
    keys = ["dicom/1.2/a.dcm", "dicom/1.2/b/c.dcm", "dicom/1.23/d.dcm", "other/e", "top"]
    for key in keys:
        store.put(key, io.BytesIO(key.encode()))

    assert sorted(store.iter_keys()) == sorted(keys)
    assert sorted(store.iter_keys("dicom/1.2/")) == ["dicom/1.2/a.dcm", "dicom/1.2/b/c.dcm"]
    assert sorted(store.iter_keys("dicom/1.2")) == [
        "dicom/1.2/a.dcm",
        "dicom/1.2/b/c.dcm",
        "dicom/1.23/d.dcm",
    ]
    assert sorted(store.iter_keys("to")) == ["top"]
    assert list(store.iter_keys("nothing/")) == []


def test_it_deletes_idempotently(store: ArchiveStore) -> None:
    store.put(KEY, io.BytesIO(b"data"))

    store.delete(KEY)
    store.delete(KEY)
    store.delete("never/stored")

    assert not store.exists(KEY)
    assert store.stat(KEY) is None
    assert list(store.iter_keys()) == []


def test_it_reports_a_missing_object_as_not_found(store: ArchiveStore) -> None:
    assert store.stat(KEY) is None
    assert not store.exists(KEY)
    with pytest.raises(ArchiveNotFoundError), store.open(KEY):
        pass
    with pytest.raises(ArchiveNotFoundError):
        store.read_range(KEY, 0, 10)
    with pytest.raises(ArchiveNotFoundError):
        store.hash_object(KEY)
    with pytest.raises(ArchiveNotFoundError):
        list(store.iter_chunks(KEY))


def test_it_detects_a_corrupted_object_when_rehashing(store: ArchiveStore) -> None:
    data = os.urandom(4096)
    stored = store.put(KEY, io.BytesIO(data))
    damaged = bytearray(data)
    damaged[100] ^= 0x01

    overwrite_behind_the_store(store, KEY, bytes(damaged))

    assert store.hash_object(KEY) != stored.sha256
    assert store.hash_object(KEY) == sha256_of(bytes(damaged))


def test_it_lets_one_of_racing_writers_win_in_a_folder(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "archive")
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def write(index: int) -> None:
        barrier.wait()
        try:
            store.put(KEY, io.BytesIO(b"writer %d" % index))
            outcomes.append("stored")
        except ArchiveConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=write, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["conflict"] * 7 + ["stored"]
    assert stored_files(store) == [KEY]


def test_it_refuses_a_key_whose_folder_is_an_object(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "archive")
    store.put("dicom/1.2", io.BytesIO(b"an object"))

    with pytest.raises(ArchiveConflictError):
        store.put("dicom/1.2/3.dcm", io.BytesIO(b"below it"))

    assert stored_files(store) == ["dicom/1.2"]


@pytest.mark.s3
def test_it_creates_the_bucket_if_absent(s3_archive_url: str) -> None:
    store = store_from_config(parse_archive_url(s3_archive_url))
    assert isinstance(store, S3Store)
    client = raw_client(store)
    assert not client.bucket_exists(store.bucket)

    store.check()

    assert client.bucket_exists(store.bucket)
    assert everything_stored(store) == []  # the check's probe is gone


@pytest.mark.s3
def test_it_uses_a_bucket_another_process_created(s3_archive_url: str) -> None:
    first = store_from_config(parse_archive_url(s3_archive_url))
    second = store_from_config(parse_archive_url(s3_archive_url))
    first.put(KEY, io.BytesIO(b"from the first"))

    second.put("other", io.BytesIO(b"from the second"))
    second.check()

    assert sorted(first.iter_keys()) == sorted([KEY, "other"])


@pytest.mark.s3
def test_it_creates_the_bucket_on_first_write(s3_archive_url: str) -> None:
    store = store_from_config(parse_archive_url(s3_archive_url))
    assert isinstance(store, S3Store)

    store.put(KEY, io.BytesIO(b"data"))

    assert raw_client(store).bucket_exists(store.bucket)


def test_it_reports_a_dead_s3_endpoint_quickly() -> None:
    port = free_port()  # nothing listens there
    store = store_from_config(parse_archive_url(f"s3://test:test@127.0.0.1:{port}/archive"))

    started = time.monotonic()
    with pytest.raises(ArchiveUnavailableError) as excinfo:
        store.check()
    elapsed = time.monotonic() - started

    assert elapsed < 10
    assert "ARCHIVE_URL" in str(excinfo.value)
    assert f"127.0.0.1:{port}" in str(excinfo.value)
    started = time.monotonic()
    with pytest.raises(ArchiveUnavailableError):
        store.put(KEY, io.BytesIO(b"data"))
    assert time.monotonic() - started < 10


def test_it_reports_an_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    store = LocalFolderStore(blocker / "archive")

    with pytest.raises(ArchiveUnavailableError) as excinfo:
        store.check()

    assert "ARCHIVE_URL" in str(excinfo.value)
    assert str(blocker / "archive") in str(excinfo.value)


def test_it_checks_a_writable_store(store: ArchiveStore) -> None:
    store.check()

    assert stored_files(store) == []


def test_it_names_instances_by_their_uids() -> None:
    assert instance_key("1.2.3", "1.2.3.4", "1.2.3.4.5") == "dicom/1.2.3/1.2.3.4/1.2.3.4.5.dcm"


@pytest.mark.parametrize(
    "uid", ["", "1.2.abc", "1..2", ".1.2", "1.2.", "1/2", "../1", "1." + "2" * 63, " 1.2"]
)
def test_it_refuses_malformed_uids(uid: str) -> None:
    with pytest.raises(ValueError, match="UID"):
        instance_key(uid, "1.2", "1.2.3")
    with pytest.raises(ValueError, match="UID"):
        instance_key("1.2", "1.2", uid)


@pytest.fixture
def fresh_store_cache() -> Iterator[None]:
    reset_store()
    yield
    reset_store()


def test_it_builds_the_configured_store_once(
    settings: Any, tmp_path: Path, fresh_store_cache: None
) -> None:
    settings.ARCHIVE = parse_archive_url(f"file://{tmp_path / 'configured'}")
    reset_store()

    store = get_store()

    assert isinstance(store, LocalFolderStore)
    assert store.root == tmp_path / "configured"
    assert get_store() is store


@pytest.mark.s3
def test_it_builds_an_s3_store_from_the_settings(
    settings: Any, s3_archive_url: str, fresh_store_cache: None
) -> None:
    settings.ARCHIVE = parse_archive_url(s3_archive_url)
    reset_store()

    store = get_store()
    store.put(KEY, io.BytesIO(b"through the settings"))

    assert isinstance(store, S3Store)
    assert store.bucket == settings.ARCHIVE.bucket
    assert store.hash_object(KEY) == sha256_of(b"through the settings")
