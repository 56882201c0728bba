"""The archive in an S3 bucket (MinIO, Ceph RGW, cloud OSS), through the ``minio`` SDK.

A write streams to a temporary key ``.tmp/<uuid>`` while hashing, checks the
size the server holds against the bytes sent and the digest against what the
caller expected, and only then copies the object server-side to its final key
with the SHA-256 as user metadata (``x-amz-meta-sha256``); the temporary key
is deleted in every case. Readers therefore never see an unverified object.
The ETag cannot serve as a checksum: for multipart uploads it is not a digest
of the content.

Uploads go in parts of ``part_size`` (8 MiB by default, as the AWS CLI; one
part in flight): memory per upload stays near three parts (the SDK keeps the
part it sent while it reads the next) whatever the object's size. A stream of
unknown size can hold 10,000 parts, 80 GB; a known size gets bigger parts.
Server-side copies of objects over 5 GiB go through multipart compose, which
the SDK does on its own.

Crashes can leave ``.tmp/`` objects and incomplete multipart uploads behind:
give the bucket a lifecycle rule expiring the ``.tmp/`` prefix and aborting
incomplete uploads after a day.

Two writers racing to create one key with different bytes are not detected
here (plain S3 has no portable create-if-absent copy); the ingest pipeline
serialises writes of one instance through its database row.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import urllib3
from minio import Minio
from minio.commonconfig import REPLACE, CopySource
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from .base import (
    ArchiveConflictError,
    ArchiveError,
    ArchiveIntegrityError,
    ArchiveNotFoundError,
    ArchiveStore,
    ArchiveUnavailableError,
    HashingReader,
    StoredObject,
    check_expected,
    remaining_length,
    validate_key,
    validate_prefix,
    validate_sha256,
)

if TYPE_CHECKING:
    from regional_cloud.env import ArchiveConfig

logger = logging.getLogger(__name__)

TMP_PREFIX = ".tmp/"
SHA256_METADATA = "x-amz-meta-sha256"
MiB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MiB
MAX_PARTS = 10_000
CONTENT_TYPE = "application/octet-stream"

_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}
_REFUSED_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllBucketsBusy",
    "AccountProblem",
    "InvalidToken",
    "ExpiredToken",
}
_BUCKET_TAKEN_CODES = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}


def _http_client(*, connect: float, read: float, retries: int) -> urllib3.PoolManager:
    """Return a connection pool that gives up on a dead endpoint within seconds.

    The SDK's default waits five minutes per attempt. Certificates come from
    SSL_CERT_FILE if set, else the system store, where hospitals install their
    internal CA.
    """
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect, read=read),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or None,
        retries=urllib3.Retry(
            total=retries,
            connect=min(retries, 2),
            read=1,
            backoff_factor=0.2,
            status_forcelist=[500, 502, 503, 504],
            # Hand the last error response to the SDK, which reports its S3 code.
            raise_on_status=False,
        ),
    )


def _part_size_for(length: int | None, preferred: int) -> int:
    """Return ``preferred`` unless S3's 10,000-part limit needs bigger parts (whole MiB)."""
    if length is None:
        return preferred
    needed = -(-length // MAX_PARTS)
    needed = -(-needed // MiB) * MiB
    return max(preferred, needed)


class S3Store(ArchiveStore):
    """An archive kept in one S3 bucket, created on first use if absent."""

    def __init__(
        self,
        config: ArchiveConfig,
        *,
        setting_name: str = "ARCHIVE_URL",
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        if config.kind != "s3":
            raise ValueError(f"S3Store needs an s3 archive config, got {config.kind!r}")
        self.config = config
        self.bucket = config.bucket
        self.setting_name = setting_name
        self.part_size = part_size
        self._client = self._make_client(_http_client(connect=3, read=120, retries=3))
        # The preflight check must answer fast even from an endpoint that
        # accepts connections and then hangs.
        self._probe_client = self._make_client(_http_client(connect=3, read=10, retries=1))
        self._bucket_ready = False

    def _make_client(self, http: urllib3.PoolManager) -> Minio:
        return Minio(
            self.config.endpoint,
            access_key=self.config.access_key or None,
            secret_key=self.config.secret_key or None,
            secure=self.config.secure,
            region=self.config.region or None,
            http_client=http,
        )

    def __repr__(self) -> str:
        return f"S3Store({self._where()})"

    def _where(self) -> str:
        scheme = "https" if self.config.secure else "http"
        return f"S3 endpoint {scheme}://{self.config.endpoint}, bucket {self.bucket!r}"

    @contextlib.contextmanager
    def _translate(self, key: str | None = None) -> Iterator[None]:
        """Turn SDK and network errors into archive errors naming the setting and endpoint."""
        try:
            yield
        except S3Error as exc:
            if key is not None and exc.code in _NOT_FOUND_CODES:
                raise ArchiveNotFoundError(f"{key}: not in the archive") from exc
            if exc.code in _REFUSED_CODES:
                raise ArchiveUnavailableError(
                    f"{self.setting_name}: the {self._where()} refused the request "
                    f"({exc.code}); check the access key and secret"
                ) from exc
            if exc.code == "NoSuchBucket":
                raise ArchiveUnavailableError(
                    f"{self.setting_name}: the {self._where()} has no such bucket"
                ) from exc
            raise ArchiveError(
                f"{self.setting_name}: the {self._where()} answered {exc.code}: {exc.message}"
            ) from exc
        except (ServerError, InvalidResponseError) as exc:
            raise ArchiveUnavailableError(
                f"{self.setting_name}: the {self._where()} is not answering as S3 should ({exc})"
            ) from exc
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ArchiveUnavailableError(
                f"{self.setting_name}: cannot reach the {self._where()} ({reason})"
            ) from exc

    def _ensure_bucket(self, client: Minio | None = None) -> None:
        if self._bucket_ready:
            return
        client = client or self._client
        with self._translate():
            if not client.bucket_exists(self.bucket):
                try:
                    client.make_bucket(self.bucket, location=self.config.region or None)
                except S3Error as exc:
                    # Another process created it between our two requests.
                    if exc.code not in _BUCKET_TAKEN_CODES or not client.bucket_exists(self.bucket):
                        raise
        self._bucket_ready = True

    def put(
        self,
        key: str,
        source: BinaryIO,
        *,
        size: int | None = None,
        sha256: str | None = None,
        overwrite: bool = False,
    ) -> StoredObject:
        validate_key(key)
        expected_sha256 = validate_sha256(sha256)
        if size is not None and size < 0:
            raise ValueError("size must not be negative")
        self._ensure_bucket()
        tmp_key = f"{TMP_PREFIX}{uuid.uuid4().hex}"
        # A known length lets the SDK read each part once, without the read-ahead
        # byte and copy it needs for streams of unknown size.
        length = size if size is not None else remaining_length(source)
        reader = HashingReader(source, limit=size)
        try:
            self._upload(tmp_key, reader, length)
            stored = StoredObject(key=key, size=reader.size, sha256=reader.hexdigest())
            check_expected(
                key,
                size=stored.size,
                sha256=reader.hexdigest(),
                expected_size=size,
                expected_sha256=expected_sha256,
            )
            with self._translate():
                held = self._client.stat_object(self.bucket, tmp_key).size
            if held != stored.size:
                raise ArchiveIntegrityError(
                    f"{key}: sent {stored.size} bytes but the server holds {held}; "
                    "nothing was stored"
                )
            if not overwrite:
                existing = self.stat(key)
                if existing is not None:
                    if self._same_content(existing, stored):
                        return stored
                    raise ArchiveConflictError(
                        f"{key}: a different object is already stored there; not overwritten"
                    )
            self._copy_into_place(tmp_key, stored)
            return stored
        finally:
            self._remove_quietly(tmp_key)

    def _upload(self, tmp_key: str, reader: HashingReader, length: int | None) -> None:
        try:
            with self._translate():
                self._client.put_object(
                    self.bucket,
                    tmp_key,
                    cast(BinaryIO, reader),
                    length=-1 if length is None else length,
                    part_size=_part_size_for(length, self.part_size),
                    num_parallel_uploads=1,
                    content_type=CONTENT_TYPE,
                )
        except OSError:
            if reader.eof and length is not None and reader.size < length:
                raise ArchiveIntegrityError(
                    f"expected {length} bytes, the stream ended after {reader.size}; "
                    "nothing was stored"
                ) from None
            raise
        # With a known length the SDK stops there: make sure the stream did too
        # (past an announced size the reader raises by itself).
        if length is not None and reader.read(1):
            raise ArchiveIntegrityError(
                f"the stream holds more than {length} bytes; nothing was stored"
            )

    def _same_content(self, existing: StoredObject, stored: StoredObject) -> bool:
        if existing.size != stored.size:
            return False
        # Objects written by other tools carry no digest: hash them.
        recorded = existing.sha256 or self.hash_object(existing.key)
        return recorded == stored.sha256

    def _copy_into_place(self, tmp_key: str, stored: StoredObject) -> None:
        assert stored.sha256 is not None
        with self._translate():
            self._client.copy_object(
                self.bucket,
                stored.key,
                CopySource(self.bucket, tmp_key),
                metadata={"Content-Type": CONTENT_TYPE, SHA256_METADATA: stored.sha256},
                metadata_directive=REPLACE,
            )
        copied = self.stat(stored.key)
        if copied is None or copied.size != stored.size or copied.sha256 != stored.sha256:
            # Leave nothing unverified at the key.
            self._remove_quietly(stored.key)
            raise ArchiveIntegrityError(
                f"{stored.key}: the server-side copy does not match what was uploaded "
                f"({copied}); nothing was stored"
            )

    def _remove_quietly(self, key: str) -> None:
        try:
            self._client.remove_object(self.bucket, key)
        except (MinioException, urllib3.exceptions.HTTPError) as exc:
            logger.warning("archive: could not remove %s from %s: %s", key, self._where(), exc)

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        """Stream the object; the connection goes back to the pool on exit."""
        validate_key(key)
        self._ensure_bucket()
        with self._translate(key):
            response = self._client.get_object(self.bucket, key)
        try:
            yield cast(BinaryIO, _ResponseStream(response, self._translate))
        finally:
            response.close()
            response.release_conn()

    def read_range(self, key: str, start: int, length: int) -> bytes:
        validate_key(key)
        if start < 0 or length < 0:
            raise ValueError("start and length must not be negative")
        if length == 0:
            # The SDK reads "length 0" as "to the end".
            if not self.exists(key):
                raise ArchiveNotFoundError(f"{key}: not in the archive")
            return b""
        self._ensure_bucket()
        try:
            with self._translate(key):
                response = self._client.get_object(self.bucket, key, offset=start, length=length)
        except ArchiveError as exc:
            cause = exc.__cause__
            if isinstance(cause, S3Error) and cause.code == "InvalidRange":
                return b""  # start at or past the end
            raise
        try:
            with self._translate(key):
                return response.read()
        finally:
            response.close()
            response.release_conn()

    def stat(self, key: str) -> StoredObject | None:
        validate_key(key)
        self._ensure_bucket()
        try:
            with self._translate(key):
                info = self._client.stat_object(self.bucket, key)
        except ArchiveNotFoundError:
            return None
        recorded = info.metadata.get(SHA256_METADATA) if info.metadata else None
        try:
            sha256 = validate_sha256(recorded)
        except ValueError:
            sha256 = None
        return StoredObject(key=key, size=int(info.size or 0), sha256=sha256)

    def delete(self, key: str) -> None:
        validate_key(key)
        self._ensure_bucket()
        with self._translate(key):
            # S3 answers 204 for a missing key too.
            self._client.remove_object(self.bucket, key)

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)
        self._ensure_bucket()
        with self._translate():
            for item in self._client.list_objects(
                self.bucket, prefix=prefix or None, recursive=True
            ):
                name = item.object_name
                if name is None or name.startswith(TMP_PREFIX):
                    continue
                yield name

    def check(self) -> None:
        probe = f"{TMP_PREFIX}check-{uuid.uuid4().hex}"
        try:
            self._ensure_bucket(self._probe_client)
            with self._translate():
                self._probe_client.put_object(self.bucket, probe, io.BytesIO(b"check"), 5)
                self._probe_client.remove_object(self.bucket, probe)
        except ArchiveUnavailableError:
            raise
        except ArchiveError as exc:
            raise ArchiveUnavailableError(str(exc)) from exc


class _ResponseStream(io.RawIOBase):
    """A GET response as a readable stream whose network failures are archive errors.

    A connection dropped halfway through a read must reach the caller (a fixity
    run, a WADO response) as :class:`ArchiveUnavailableError`, like any other.
    """

    def __init__(
        self,
        response: urllib3.BaseHTTPResponse,
        translate: Callable[[], contextlib.AbstractContextManager[None]],
    ) -> None:
        self._response = response
        self._translate = translate

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        with self._translate():
            if size is None or size < 0:
                return self._response.read()
            return self._response.read(size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
