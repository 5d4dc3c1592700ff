"""COCO 2017 photos for the book: a seeded subset, downloaded once, verified and resumable.

:func:`download_coco_subset` (1) downloads the official annotations archive once into
``cache_dir()/coco/annotations`` (kept, about 240 MB) and extracts ``instances_{split}.json``;
(2) lets pycocotools pick ``num_images`` ids by a seeded shuffle (optionally only images showing
some categories); the first ``k`` of a shuffle are the same for every ``num_images >= k``, so
asking for more photos later reuses the cached ones; (3) fetches ``{base}/{split}/{file_name}``
with a small thread pool (COCO photos are small: latency, not bandwidth, is the cost); (4)
writes ``instances_{split}_subset.json`` with the annotations of exactly those photos.

Every file goes through :mod:`colorlib.data.download` (resumable, retried, checked against a
per-folder manifest), so a second call downloads nothing and a damaged file heals.

The server is ``base_url``, else ``$COLORLIB_COCO_URL``, else :data:`COCO_BASE_URL` (read at
call time). Only the standard library (urllib), pycocotools and tqdm are used.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import threading
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from colorlib.data.download import (
    USER_AGENT,
    DownloadError,
    Manifest,
    fetch_verified,
)
from colorlib.runtime import cache_dir

__all__ = [
    "COCO_BASE_URL",
    "SPLITS",
    "coco_reachable",
    "download_coco_subset",
    "subset_annotation_file",
]

COCO_BASE_URL = "http://images.cocodataset.org"
ANNOTATIONS_ARCHIVE = "annotations/annotations_trainval2017.zip"
SPLITS = ("train2017", "val2017")
IMAGE_THREADS = 8


def _resolve_base_url(base_url: str | None) -> str:
    return (base_url or os.environ.get("COLORLIB_COCO_URL") or COCO_BASE_URL).rstrip("/")


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
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": USER_AGENT})
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


def _instances_json(base: str, split: str) -> Path:
    """``instances_{split}.json``, extracted from the (cached) annotations archive."""
    folder = cache_dir() / "coco" / "annotations"
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(folder)
    json_path = folder / f"instances_{split}.json"
    if manifest.verified(json_path):
        return json_path
    archive = folder / Path(ANNOTATIONS_ARCHIVE).name
    url = f"{base}/{ANNOTATIONS_ARCHIVE}"
    fetch_verified(url, archive, manifest, progress=True)
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
    manifest = Manifest(dest)
    paths = [dest / image["file_name"] for image in images]

    def fetch(path: Path) -> bool:
        return fetch_verified(f"{base}/{split}/{path.name}", path, manifest, progress=False)

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
    from pycocotools.coco import COCO  # here: `import colorlib.data.coco` stays light

    base = _resolve_base_url(base_url)
    dest = Path(dest) if dest is not None else cache_dir() / "coco" / split
    dest.mkdir(parents=True, exist_ok=True)
    coco = COCO(str(_instances_json(base, split)))
    image_ids = _choose_image_ids(coco, num_images, seed, categories)
    paths = _download_images(base, split, coco.loadImgs(image_ids), dest)
    _write_subset(coco, image_ids, subset_annotation_file(split, dest))
    return paths
