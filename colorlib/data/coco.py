"""COCO 2017 photos for the book: a seeded subset, downloaded once, verified and resumable.

:func:`download_coco_subset` (1) downloads the official annotations archive once into
``cache_dir()/coco/annotations`` (kept, about 240 MB) and extracts ``instances_{split}.json``;
(2) lets pycocotools pick ``num_images`` ids by a seeded shuffle (optionally only images showing
some categories); the first ``k`` of a shuffle are the same for every ``num_images >= k``, so
asking for more photos later reuses the cached ones; (3) fetches ``{base}/{split}/{file_name}``
with a small thread pool (COCO photos are small: latency, not bandwidth, is the cost); (4)
writes ``instances_{split}_subset.json`` with the annotations of exactly those photos.

Every file goes through :func:`download_file`: bytes go to ``<name>.part``, a partial file is
resumed with an HTTP ``Range`` request (started over when the server ignores it), transient
failures are retried with exponential backoff, every request has a timeout, and the ``.part``
file is renamed only once complete. Each folder keeps an append-only ``manifest.jsonl`` (sha256
and size, one line after each download); cached files are checked against it and fetched again
when they differ, so a second call downloads nothing and a damaged file heals.

The server is ``base_url``, else ``$COLORLIB_COCO_URL``, else :data:`COCO_BASE_URL` (read at
call time). Only the standard library (urllib), pycocotools and tqdm are used.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import shutil
import threading
import time
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from colorlib.runtime import cache_dir

__all__ = [
    "COCO_BASE_URL",
    "SPLITS",
    "DownloadError",
    "coco_reachable",
    "download_file",
    "download_coco_subset",
    "subset_annotation_file",
]

COCO_BASE_URL = "http://images.cocodataset.org"
ANNOTATIONS_ARCHIVE = "annotations/annotations_trainval2017.zip"
SPLITS = ("train2017", "val2017")
MANIFEST_NAME = "manifest.jsonl"
IMAGE_THREADS = 8

_CHUNK = 1 << 16
_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}
_USER_AGENT = "colorlib/0.1 (COCO subset downloader)"


class DownloadError(RuntimeError):
    """A download failed for good; the message names the URL and why."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"could not download {url}: {reason}")
        self.url = url


class _Incomplete(Exception):
    """The body stopped short (or the server answered another range): worth another try."""


def _resolve_base_url(base_url: str | None) -> str:
    return (base_url or os.environ.get("COLORLIB_COCO_URL") or COCO_BASE_URL).rstrip("/")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def coco_reachable(base_url: str | None = None, timeout: float = 3.0) -> bool:
    """Whether the COCO server serves the annotations archive, asked with one HTTP ``HEAD``.

    Only a success (2xx after redirects) counts: a proxy or captive portal that answers
    everything with an error is not COCO. The probe runs in a daemon thread that is waited on
    for about ``timeout`` seconds, so a slow DNS lookup cannot make it hang.
    ``COLORLIB_OFFLINE=1`` gives ``False`` without a probe.
    """
    if os.environ.get("COLORLIB_OFFLINE", "") not in ("", "0"):
        return False
    url = f"{_resolve_base_url(base_url)}/{ANNOTATIONS_ARCHIVE}"
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": _USER_AGENT})
    answers: list[bool] = []

    def probe() -> None:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answers.append(response.status < 400)
        except (OSError, ValueError, http.client.HTTPException):  # HTTPError is an OSError
            answers.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answers) and answers[0]


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
        if expected is None or _sha256(dest) == expected:
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
        if expected is not None and (actual := _sha256(part)) != expected:
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
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
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


class _Manifest:
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
            and _sha256(path) == entry.get("sha256")
        )

    def record(self, path: Path) -> None:
        entry = {"name": path.name, "sha256": _sha256(path), "size": path.stat().st_size}
        with self._lock, open(self.path, "a") as file:
            file.write(("\n" if self._needs_newline else "") + json.dumps(entry) + "\n")
            self._needs_newline = False
            self.entries[path.name] = entry


def _fetch_verified(url: str, path: Path, manifest: _Manifest, progress: bool) -> bool:
    """Make ``path`` a verified copy of ``url``; ``True`` when it had to be downloaded."""
    if manifest.verified(path):
        return False
    path.unlink(missing_ok=True)
    download_file(url, path, progress=progress)
    manifest.record(path)
    return True


def _instances_json(base: str, split: str) -> Path:
    """``instances_{split}.json``, extracted from the (cached) annotations archive."""
    folder = cache_dir() / "coco" / "annotations"
    folder.mkdir(parents=True, exist_ok=True)
    manifest = _Manifest(folder)
    json_path = folder / f"instances_{split}.json"
    if manifest.verified(json_path):
        return json_path
    archive = folder / Path(ANNOTATIONS_ARCHIVE).name
    url = f"{base}/{ANNOTATIONS_ARCHIVE}"
    _fetch_verified(url, archive, manifest, progress=True)
    member = f"annotations/{json_path.name}"
    part = json_path.with_name(json_path.name + ".part")
    try:
        with (
            zipfile.ZipFile(archive) as zipped,
            zipped.open(member) as src,
            open(part, "wb") as dst,
        ):
            shutil.copyfileobj(src, dst, 1 << 20)
    except KeyError:
        raise DownloadError(url, f"the archive has no member {member!r}") from None
    except zipfile.BadZipFile as error:
        archive.unlink()  # so that the next call downloads it again
        raise DownloadError(url, f"not a valid zip archive ({error})") from error
    os.replace(part, json_path)
    manifest.record(json_path)
    return json_path


def _choose_image_ids(coco, num_images: int, seed: int, categories: list[str] | None) -> list[int]:
    """A seeded shuffle of the candidate image ids, cut to ``num_images``."""
    if categories:
        known = {category["name"]: category["id"] for category in coco.dataset["categories"]}
        unknown = sorted(set(categories) - set(known))
        if unknown:
            raise ValueError(f"unknown COCO categories {unknown}; expected some of {sorted(known)}")
        candidates = set().union(*(coco.getImgIds(catIds=[known[name]]) for name in categories))
    else:
        candidates = set(coco.getImgIds())
    image_ids = sorted(candidates)
    if num_images > len(image_ids):
        raise ValueError(
            f"num_images={num_images} but only {len(image_ids)} images match "
            f"(categories={categories})"
        )
    random.Random(seed).shuffle(image_ids)
    return image_ids[:num_images]


def _download_images(base: str, split: str, images: list[dict], dest: Path) -> list[Path]:
    """Fetch (or verify) every image with a thread pool; one progress bar in images."""
    for image in images:
        if Path(image["file_name"]).name != image["file_name"]:
            raise ValueError(f"unexpected file_name {image['file_name']!r}: expected a bare name")
    manifest = _Manifest(dest)
    paths = [dest / image["file_name"] for image in images]

    def fetch(path: Path) -> bool:
        return _fetch_verified(f"{base}/{split}/{path.name}", path, manifest, progress=False)

    with (
        ThreadPoolExecutor(max_workers=IMAGE_THREADS) as pool,
        tqdm(total=len(paths), unit="img", desc=f"COCO {split}") as bar,
    ):
        futures = [pool.submit(fetch, path) for path in paths]
        try:
            for future in as_completed(futures):
                future.result()
                bar.update(1)
        except BaseException:
            pool.shutdown(cancel_futures=True)  # recorded downloads stay for the next call
            raise
    return paths


def _write_subset(coco, image_ids: list[int], path: Path) -> None:
    """A COCO annotation file restricted to ``image_ids`` (written atomically)."""
    dataset = coco.dataset
    subset = {
        "info": dataset.get("info", {}),
        "licenses": dataset.get("licenses", []),
        "images": coco.loadImgs(image_ids),
        "annotations": coco.loadAnns(coco.getAnnIds(imgIds=image_ids)),
        "categories": dataset.get("categories", []),
    }
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(subset))
    os.replace(part, path)


def subset_annotation_file(split: str = "train2017", dest: str | Path | None = None) -> Path:
    """Where :func:`download_coco_subset` writes the annotations of the photos it chose."""
    folder = Path(dest) if dest is not None else cache_dir() / "coco" / split
    return folder / f"instances_{split}_subset.json"


def download_coco_subset(
    num_images: int,
    dest: Path | None = None,
    split: str = "train2017",
    base_url: str | None = None,
    seed: int = 0,
    categories: list[str] | None = None,
) -> list[Path]:
    """Download a seeded subset of COCO 2017 photos and their annotations.

    Args:
        num_images: how many photos (``>= 1``).
        dest: folder for the photos (default ``cache_dir()/coco/{split}``).
        split: ``"train2017"`` or ``"val2017"``.
        base_url: COCO server (default ``$COLORLIB_COCO_URL``, else :data:`COCO_BASE_URL`).
        seed: seed of the choice; the first ``k`` photos are the same for any ``num_images >= k``.
        categories: names (e.g. ``["dog", "cat"]``): only photos showing one of them are chosen.

    Returns:
        The ``num_images`` JPEG paths in the seeded order; their annotations are in
        ``subset_annotation_file(split, dest)`` (rewritten by each call).

    Raises:
        ValueError: bad ``num_images``, ``split`` or category name, or too few matching photos.
        DownloadError: a file could not be downloaded (the message names its URL).

    Example:
        >>> paths = download_coco_subset(1000, seed=0)  # doctest: +SKIP
        >>> coco = COCO(str(subset_annotation_file()))  # pycocotools  # doctest: +SKIP
    """
    if split not in SPLITS:
        raise ValueError(f"unknown COCO split {split!r}; expected one of {SPLITS}")
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise ValueError(f"num_images must be a positive int, got {num_images!r}")
    from pycocotools.coco import COCO  # here: `import colorlib.coco` stays light

    base = _resolve_base_url(base_url)
    dest = Path(dest) if dest is not None else cache_dir() / "coco" / split
    dest.mkdir(parents=True, exist_ok=True)
    coco = COCO(str(_instances_json(base, split)))
    image_ids = _choose_image_ids(coco, num_images, seed, categories)
    paths = _download_images(base, split, coco.loadImgs(image_ids), dest)
    _write_subset(coco, image_ids, subset_annotation_file(split, dest))
    return paths
