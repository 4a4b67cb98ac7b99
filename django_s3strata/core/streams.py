"""Streams over S3: a size-limited reader, a seekable ranged reader of one object, a listing read ahead."""

from __future__ import annotations

import base64
import hashlib
import io
import queue
import threading
import zlib
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

from .config import ResolvedTier
from .exceptions import FileTooLargeError, StorageError
from .s3errors import translate_errors
from .types import ObjectInfo, S3Object

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

__all__ = ["LimitedReader", "S3ObjectReader", "read_ahead", "remaining_bytes"]


class _Crc32:
    """zlib's CRC-32 with hashlib's update/digest faces (S3's CRC32 checksum: big-endian, 4 bytes)."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


def _digest(algorithm: str) -> Any:
    """Return a fresh digest for an S3 checksum algorithm this process can compute, else None (CRC32C needs awscrt)."""
    if algorithm == "CRC32":
        return _Crc32()
    if algorithm in ("SHA1", "SHA256"):
        return hashlib.new(algorithm.lower(), usedforsecurity=False)
    return None


class LimitedReader(io.RawIOBase):
    """Pass reads through, raising FileTooLargeError past ``limit`` bytes, hashing with MD5 and S3 checksums if asked."""

    def __init__(self, source: IO[bytes] | Any, limit: float, hash_md5: bool = False, checksums: Iterable[str] = ()) -> None:
        super().__init__()
        self._source = source
        self._limit = limit
        self.count = 0
        self.md5 = hashlib.md5(usedforsecurity=False) if hash_md5 else None
        self._digests = {name: d for name in checksums if (d := _digest(name)) is not None}

    def md5_hex(self) -> str:
        """Return the MD5 of the bytes read, in hex (an ETag's form)."""
        assert self.md5 is not None, "LimitedReader(hash_md5=True) computes the MD5"
        return self.md5.hexdigest()

    def digests(self) -> dict[str, str]:
        """Return the S3 checksums of the bytes read, base64 as S3 reports them, by algorithm."""
        return {name: base64.b64encode(d.digest()).decode() for name, d in self._digests.items()}

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data: bytes = self._source.read(size if size is not None and size >= 0 else -1)
        self.count += len(data)
        if self.count > self._limit:
            raise FileTooLargeError(None, self._limit)
        if self.md5 is not None:
            self.md5.update(data)
        for digest in self._digests.values():
            digest.update(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class S3ObjectReader(io.RawIOBase):
    """A seekable, readable view of one object that fetches ranges on demand.

    Sequential reads stream one ranged GET; a seek closes it and the next read opens
    another at the new position. Reads are pinned to the ETag seen at open, so an
    object replaced mid-read fails loudly instead of mixing two versions.
    """

    def __init__(self, client: S3Client, resolved: ResolvedTier, key: str, info: ObjectInfo) -> None:
        super().__init__()
        self._client = client
        self._resolved = resolved
        self._tier = resolved.tier
        self.name = key
        self.info = info
        self.size = info.size
        self._pos = 0
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        target = base + offset
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        if target != self._pos:
            self._drop_body()
            self._pos = target
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self.size or len(buffer) == 0:
            return 0
        resolved = self._resolved
        with translate_errors("GetObject", resolved, self.name):
            if self._body is None:
                params: dict[str, Any] = {"Bucket": resolved.bucket, "Key": self.name, "Range": f"bytes={self._pos}-"}
                if self.info.etag:
                    params["IfMatch"] = f'"{self.info.etag}"'
                self._body = self._client.get_object(**params)["Body"]
            data = self._body.read(min(len(buffer), self.size - self._pos))
        if not data:
            raise StorageError(
                f"the object ended at byte {self._pos} of {self.size}.",
                operation="GetObject",
                tier=self._tier.value,
                bucket=resolved.bucket,
                key=self.name,
                transient=True,
            )
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()


_END = object()


def read_ahead(pages: Iterator[list[S3Object]]) -> Iterator[list[S3Object]]:
    """Yield ``pages`` while a thread fetches the next one; errors arrive in order; closing stops it."""
    ready: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def offer(item: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fetch() -> None:
        try:
            for page in pages:
                if not offer((page, None)):
                    return
        except BaseException as exc:
            offer((_END, exc))
            return
        offer((_END, None))

    threading.Thread(target=fetch, name="s3strata-list", daemon=True).start()
    try:
        while True:
            page, error = ready.get()
            if page is _END:
                if error is not None:
                    raise error
                return
            yield page
    finally:
        stop.set()


def remaining_bytes(stream: Any) -> int | None:
    """Return the bytes left in a seekable stream, or None when it cannot tell."""
    try:
        if not stream.seekable():
            return None
        here = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(here)
        return int(end - here)
    except (AttributeError, OSError, ValueError):
        return None
