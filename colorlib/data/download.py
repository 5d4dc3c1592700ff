"""Files over HTTP that arrive whole or not at all: resumable, retried, verified downloads.

Every file goes through :func:`download_file`: bytes go to ``<name>.part``, a partial file is
resumed with an HTTP ``Range`` request (started over when the server ignores it), transient
failures are retried with exponential backoff, every request has a timeout, and the ``.part``
file is renamed only once complete. A folder's :class:`Manifest` (``manifest.jsonl``: sha256
and size, one line after each download) lets :func:`fetch_verified` check cached files and
fetch them again when they differ, so a second call downloads nothing and a damaged file heals.
Only the standard library (urllib) and tqdm are used.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

__all__ = ["DownloadError", "download_file", "Manifest", "fetch_verified", "sha256_of"]

MANIFEST_NAME = "manifest.jsonl"
USER_AGENT = "colorlib/0.1 (COCO subset downloader)"
_CHUNK = 1 << 16
_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(RuntimeError):
    """A download failed for good; the message names the URL and why."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"could not download {url}: {reason}")
        self.url = url


class _Incomplete(Exception):
    """The body stopped short (or the server answered another range): worth another try."""


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(
    url: str,
    dest: str | Path,
    expected_sha256: str | None = None,
    *,
    timeout: float = 30.0,
    retries: int = 5,
    backoff: float = 0.5,
    progress: bool = True,
    desc: str | None = None,
) -> Path:
    """Download ``url`` to ``dest``: resumable, atomic, retried, optionally checksummed.

    An existing ``dest`` is returned as is (when ``expected_sha256`` is given, only if it
    matches; otherwise it is fetched again). Bytes go to ``dest + ".part"``, which a later
    call resumes with a ``Range`` request; the file gets its final name only when complete.

    Args:
        url: the file to fetch; ``dest``: where it goes (parent folders are created).
        expected_sha256: hex digest the finished file must have, or ``None`` not to check.
        timeout: seconds every connect and read may wait.
        retries: further tries after a transient failure (network error, timeout, 5xx, 429,
            body cut short), waiting ``backoff * 2**k`` seconds before try ``k + 1``.
        progress, desc: show a tqdm bar in bytes, labelled ``desc`` (default: the file name).

    Raises:
        DownloadError: on a permanent HTTP error (404, 403, ...), a checksum mismatch, or when
            every try failed; the message names the URL.

    Example:
        >>> download_file(f"{COCO_BASE_URL}/val2017/000000000139.jpg", "139.jpg")  # doctest: +SKIP
    """
    dest = Path(dest)
    expected = expected_sha256.lower() if expected_sha256 else None
    if dest.is_file():
        if expected is None or sha256_of(dest) == expected:
            return dest
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: BaseException | None = None
    for attempt in range(retries + 1):
        if attempt and last_error is not None:
            time.sleep(backoff * 2 ** (attempt - 1))
        resumed = part.is_file() and part.stat().st_size > 0
        try:
            _fetch_into(url, part, timeout, progress, desc or dest.name)
        except urllib.error.HTTPError as error:
            error.close()
            if error.code not in _TRANSIENT_HTTP:
                raise DownloadError(url, f"HTTP {error.code} {error.reason}") from error
            last_error = error
            continue
        except (OSError, http.client.HTTPException, _Incomplete) as error:
            last_error = error
            continue
        if expected is not None and (actual := sha256_of(part)) != expected:
            part.unlink()
            if resumed:  # the old partial bytes may be the culprit: one fresh try
                last_error = _Incomplete(f"sha256 {actual} after resuming; starting over")
                continue
            raise DownloadError(url, f"sha256 is {actual}, expected {expected}")
        os.replace(part, dest)
        return dest
    raise DownloadError(url, f"gave up after {retries + 1} tries; last error: {last_error!r}")


def _fetch_into(url: str, part: Path, timeout: float, progress: bool, desc: str) -> None:
    """One HTTP request that appends to (206) or rewrites (200) ``part``; raises if short."""
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code != 416 or not offset:
            raise
        error.close()
        if _content_range(error.headers.get("Content-Range", ""))[1] == offset:
            return  # the partial file already held every byte
        part.unlink()
        raise _Incomplete(f"server refused the range from byte {offset}") from None
    with response:
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range", ""))
            if start != offset:
                part.unlink()
                raise _Incomplete(f"asked for bytes from {offset}, server sent from {start}")
            mode = "ab"
        else:  # 200: no Range sent, or the server ignored it; start over
            offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        bar = tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=desc, disable=not progress,
        )  # fmt: skip
        with open(part, mode) as file, bar:
            while chunk := response.read(_CHUNK):
                file.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        if size > total:
            part.unlink()
        raise _Incomplete(f"received {size} of {total} bytes")


def _content_range(header: str) -> tuple[int | None, int | None]:
    """``"bytes 10-99/100"`` -> ``(10, 100)``; ``"bytes */100"`` -> ``(None, 100)``."""
    try:
        span, total = header.removeprefix("bytes ").split("/")
        start = None if span == "*" else int(span.split("-")[0])
        return start, None if total == "*" else int(total)
    except ValueError:
        return None, None


class Manifest:
    """``manifest.jsonl`` of a folder: one ``{"name", "sha256", "size"}`` line per download.

    Append-only, so recording a file costs one short write even with thousands of files, and
    a line cut short by a crash only loses that line. The last line for a name wins.
    """

    def __init__(self, folder: Path):
        self.path = folder / MANIFEST_NAME
        self.entries: dict[str, dict] = {}
        self._lock = threading.Lock()
        text = self.path.read_text() if self.path.is_file() else ""
        self._needs_newline = bool(text) and not text.endswith("\n")  # a crash cut a line short
        for line in text.splitlines():
            try:
                entry = json.loads(line)
                self.entries[entry["name"]] = entry
            except (ValueError, KeyError, TypeError):
                continue

    def verified(self, path: Path) -> bool:
        """Whether ``path`` exists with the size and sha256 recorded for it."""
        entry = self.entries.get(path.name)
        return (
            entry is not None
            and path.is_file()
            and path.stat().st_size == entry.get("size")
            and sha256_of(path) == entry.get("sha256")
        )

    def record(self, path: Path) -> None:
        entry = {"name": path.name, "sha256": sha256_of(path), "size": path.stat().st_size}
        with self._lock, open(self.path, "a") as file:
            file.write(("\n" if self._needs_newline else "") + json.dumps(entry) + "\n")
            self._needs_newline = False
            self.entries[path.name] = entry


def fetch_verified(url: str, path: Path, manifest: Manifest, progress: bool) -> bool:
    """Make ``path`` a verified copy of ``url``; ``True`` when it had to be downloaded."""
    if manifest.verified(path):
        return False
    path.unlink(missing_ok=True)
    download_file(url, path, progress=progress)
    manifest.record(path)
    return True
