"""Where does a colorizer fail? Colour error inside the COCO instance masks of each category.

The original report claims that its pretrained model is "conservative with rare objects and
faces" and that colours "bleed" across object edges. Image-level metrics cannot test either
claim; COCO's instance masks can. For every annotated instance of a held-back photo this module
compares the predicted colour with the real one *inside the instance's mask*, in CIELAB units:

* ``ab_error``: mean Euclidean distance between predicted and real ``(a, b)`` over the mask
  (the lightness is the photo's own, so this is the whole colour error);
* ``real_chroma`` / ``pred_chroma``: mean ``sqrt(a^2 + b^2)``; their ratio ``chroma_ratio``
  (pixel-weighted over instances) below 1 means *conservative*, washed-out colour;
* ``boundary_error`` / ``interior_error``: the ab error in a band of ``boundary_px`` pixels on
  both sides of the mask's edge, and deeper inside the mask. Colour that leaks across an edge
  raises the first; ``bleeding`` = boundary / interior, compared against the gray baseline's
  ratio (which is what the photos' own edges give with no colour prediction at all);
* a ``head`` pseudo-category for faces, which COCO does not annotate: the top fifth of a person
  instance's box, inside its mask (persons at least 48 px tall only);
* a ``background`` pseudo-category for the pixels outside every instance: sky, grass, walls and
  roads are COCO-*Stuff* classes, absent from ``instances.json``.

Design: :func:`find_annotation_file` looks for the instances file next to the photos
(coco-mini's ``annotations/instances.json``, the downloaded subset's
``instances_<split>_subset.json``); :func:`load_coco` reads it quietly with pycocotools;
:func:`annotated_photos` matches it to photo files (names are COCO ids);
:func:`instance_stats` measures one photo's instances given its real and predicted Lab
arrays (numpy; evaluation only, never on the training path); :func:`evaluate_regions` runs
colorizers (any ``gray PIL image -> RGB PIL image`` callable, e.g. a partial of
:func:`colorlib.inference.colorize`) over photos at full resolution with a progress bar;
:func:`summarise` pools the rows by model and category; :func:`category_frequency` ranks
categories by how often COCO shows them, to split frequent from rare; :func:`instance_crops`
cuts example crops for figures.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from colorlib.color import rgb_to_lab
from colorlib.data.images import gray_baseline, load_rgb, to_rgb_tensor

__all__ = [
    "HEAD",
    "BACKGROUND",
    "InstanceStats",
    "find_annotation_file",
    "load_coco",
    "annotated_photos",
    "rgb_to_lab_array",
    "instance_stats",
    "evaluate_regions",
    "summarise",
    "category_frequency",
    "with_groups",
    "instance_crops",
]

HEAD = "head (top of person)"
BACKGROUND = "background (no instance)"
_MIN_PERSON_HEIGHT = 48  # px: below this the "head" box is a few pixels of hair


@dataclass(frozen=True)
class InstanceStats:
    """One region of one photo (an instance mask, a head box or the background).

    Errors and chroma are means over the region's pixels in CIELAB units; ``boundary_error``
    and ``interior_error`` are NaN when the band or the interior has no pixel.
    """

    image_id: int
    category: str
    area: int
    ab_error: float
    real_chroma: float
    pred_chroma: float
    boundary_error: float
    interior_error: float
    bbox: tuple[int, int, int, int]  # x, y, width, height in pixels


def find_annotation_file(photos: Sequence[str | os.PathLike]) -> Path | None:
    """The COCO instances file that annotates ``photos``, or None.

    Looks in the photos' common folder and its parent, for ``annotations/instances*.json`` and
    ``instances*.json`` (coco-mini's layout and the one :mod:`colorlib.data.coco` writes). Photos
    from several folders or none: None.
    """
    folders = {Path(p).resolve().parent for p in photos}
    if len(folders) != 1:
        return None
    folder = folders.pop()
    for root in (folder, folder.parent):
        for pattern in ("annotations/instances*.json", "instances*.json"):
            found = sorted(root.glob(pattern))
            if found:
                return found[0]
    return None


def load_coco(annotation_file: str | os.PathLike):
    """``pycocotools.coco.COCO`` for ``annotation_file``, without its console chatter.

    Raises:
        FileNotFoundError: no such file (the message names it).
    """
    from pycocotools.coco import COCO

    path = Path(annotation_file)
    if not path.is_file():
        raise FileNotFoundError(f"no COCO annotation file at {path}")
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def annotated_photos(coco, photos: Iterable[str | os.PathLike]) -> dict[Path, int]:
    """The photos that ``coco`` annotates: ``{path: image_id}``, in the order given.

    A photo matches by file name (``000000000139.jpg``) or, failing that, by the COCO id in
    its stem (``139.png``). Photos without annotations are left out.
    """
    by_name = {info["file_name"]: image_id for image_id, info in coco.imgs.items()}
    ids = set(coco.imgs)
    found = {}
    for photo in photos:
        path = Path(photo)
        image_id = by_name.get(path.name)
        if image_id is None and path.stem.isdigit() and int(path.stem) in ids:
            image_id = int(path.stem)
        if image_id is not None and coco.getAnnIds(imgIds=[image_id], iscrowd=None):
            found[path] = image_id
    return found


def rgb_to_lab_array(image: Image.Image) -> np.ndarray:
    """An RGB ``PIL`` image as a float64 ``(H, W, 3)`` CIELAB array (D65; colorlib.color)."""
    return rgb_to_lab(to_rgb_tensor(image).double()).permute(1, 2, 0).numpy()


def _regions(coco, image_id: int, shape: tuple[int, int], min_area: int):
    """``(category, mask, bbox)`` for the instances, head boxes and background of a photo."""
    height, width = shape
    info = coco.imgs[image_id]
    if (info["height"], info["width"]) != (height, width):
        raise ValueError(
            f"COCO image {image_id} is annotated at {info['width']}x{info['height']} but the "
            f"photo is {width}x{height}: annotations and photos must share one resolution"
        )
    covered = np.zeros(shape, dtype=bool)
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=None)):
        if ann.get("iscrowd") or not ann.get("segmentation"):
            x, y, w, h = (int(round(v)) for v in ann["bbox"])
            covered[y : y + h, x : x + w] = True  # a crowd's box: not background either
            continue  # crowd run-length masks were dropped: no mask to measure
        with warnings.catch_warnings():  # pycocotools 2.0.11 vs numpy 2's copy keyword
            warnings.simplefilter("ignore", DeprecationWarning)
            mask = coco.annToMask(ann).astype(bool)
        covered |= mask
        if mask.sum() < min_area:
            continue
        x, y, w, h = (int(round(v)) for v in ann["bbox"])
        yield names[ann["category_id"]], mask, (x, y, w, h)
        if names[ann["category_id"]] == "person" and h >= _MIN_PERSON_HEIGHT:
            head = np.zeros(shape, dtype=bool)
            head[y : y + max(1, h // 5), x : x + w] = True
            head &= mask
            if head.sum() >= min_area:
                yield HEAD, head, (x, y, w, max(1, h // 5))
    background = ~covered
    if background.sum() >= min_area:
        yield BACKGROUND, background, (0, 0, width, height)


def _band(mask: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels within ``width`` of the mask's edge (both sides), and the mask's interior."""
    structure = ndimage.generate_binary_structure(2, 1)
    grown = ndimage.binary_dilation(mask, structure, iterations=width)
    shrunk = ndimage.binary_erosion(mask, structure, iterations=width, border_value=1)
    return grown & ~shrunk, shrunk


def _mean(values: np.ndarray, where: np.ndarray) -> float:
    return float(values[where].mean()) if where.any() else float("nan")


def instance_stats(
    coco,
    image_id: int,
    real_lab: np.ndarray,
    pred_lab: np.ndarray,
    boundary_px: int = 3,
    min_area: int = 64,
) -> list[InstanceStats]:
    """Colour error and chroma of every region of one photo.

    Args:
        coco: from :func:`load_coco`; its annotations must be at the photos' resolution.
        image_id: the photo's COCO id.
        real_lab, pred_lab: ``(H, W, 3)`` CIELAB arrays of the real and colorized photo (see
            :func:`rgb_to_lab_array`).
        boundary_px: half-width of the edge band, in pixels.
        min_area: regions with fewer pixels are skipped (their means are noise).

    Returns:
        One :class:`InstanceStats` per instance, head box and the background.

    Raises:
        ValueError: arrays of different shapes or not ``(H, W, 3)``; annotations at another
            resolution than the photo; ``boundary_px < 1``.
    """
    if real_lab.shape != pred_lab.shape or real_lab.ndim != 3 or real_lab.shape[2] != 3:
        raise ValueError(
            f"real_lab and pred_lab must both be (H, W, 3), got {real_lab.shape} and "
            f"{pred_lab.shape}"
        )
    if boundary_px < 1:
        raise ValueError(f"boundary_px must be >= 1, got {boundary_px}")
    error = np.linalg.norm(pred_lab[..., 1:] - real_lab[..., 1:], axis=-1)
    real_chroma = np.linalg.norm(real_lab[..., 1:], axis=-1)
    pred_chroma = np.linalg.norm(pred_lab[..., 1:], axis=-1)
    rows = []
    for category, mask, bbox in _regions(coco, image_id, real_lab.shape[:2], min_area):
        band, interior = _band(mask, boundary_px) if category != BACKGROUND else (mask, mask)
        rows.append(
            InstanceStats(
                image_id=image_id,
                category=category,
                area=int(mask.sum()),
                ab_error=_mean(error, mask),
                real_chroma=_mean(real_chroma, mask),
                pred_chroma=_mean(pred_chroma, mask),
                boundary_error=_mean(error, band) if category != BACKGROUND else float("nan"),
                interior_error=_mean(error, interior) if category != BACKGROUND else float("nan"),
                bbox=bbox,
            )
        )
    return rows


Colorizer = Callable[[Image.Image], Image.Image]


def evaluate_regions(
    colorizers: Mapping[str, Colorizer],
    photos: Mapping[Path, int],
    coco,
    boundary_px: int = 3,
    min_area: int = 64,
    progress: bool = True,
) -> list[dict]:
    """Run every colorizer on every photo at full resolution and measure its regions.

    Args:
        colorizers: name -> ``gray PIL image -> RGB PIL image`` of the same size, given the
            photo's own lightness (:func:`colorlib.data.images.gray_baseline`; e.g.
            ``functools.partial(colorize, model, size=256)``, or
            :func:`colorlib.data.images.gray_baseline` itself).
        photos: ``{path: image_id}`` from :func:`annotated_photos` (held-back photos only).
        coco, boundary_px, min_area: as for :func:`instance_stats`.
        progress: a tqdm bar over the photos.

    Returns:
        Rows: the :class:`InstanceStats` fields as a dict, plus ``"model"``.

    Raises:
        ValueError: a colorizer returned an image of another size.
    """
    from tqdm.auto import tqdm

    rows = []
    for path, image_id in tqdm(photos.items(), desc="regions", disable=not progress):
        real = load_rgb(path)
        real_lab = rgb_to_lab_array(real)
        gray = gray_baseline(real)  # the photo's own L*, as training sees it
        for name, colorizer in colorizers.items():
            output = colorizer(gray)
            if output.size != real.size:
                raise ValueError(
                    f"colorizer {name!r} returned {output.size[0]}x{output.size[1]} for a "
                    f"{real.size[0]}x{real.size[1]} photo ({path.name})"
                )
            pred_lab = rgb_to_lab_array(output)
            for stats in instance_stats(coco, image_id, real_lab, pred_lab, boundary_px, min_area):
                rows.append({"model": name, **asdict(stats)})
    return rows


def summarise(
    rows: Sequence[Mapping], min_instances: int = 1, by: str = "category"
) -> dict[str, dict[str, dict[str, float]]]:
    """Pool region rows per model and ``by`` (a row key: ``"category"`` or a group you added).

    Errors and chroma are *pixel-weighted* means (a large instance counts more, as in an
    image-level metric); ``bleeding`` is the mean over instances of boundary / interior error
    (instances with both parts only).

    Returns:
        ``{model: {group: {"instances", "pixels", "ab_error", "real_chroma", "pred_chroma",
        "chroma_ratio", "bleeding"}}}``; groups with fewer than ``min_instances`` rows are
        left out.

    Raises:
        KeyError: a row without ``"model"`` or ``by``.
    """
    pooled: dict[tuple[str, str], list[Mapping]] = defaultdict(list)
    for row in rows:
        pooled[(row["model"], row[by])].append(row)
    table: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for (model, group), members in pooled.items():
        if len(members) < min_instances:
            continue
        area = np.array([m["area"] for m in members], dtype=np.float64)

        def weighted(key, area=area, members=members):
            return float(np.dot(area, [m[key] for m in members]) / area.sum())

        ratios = [
            m["boundary_error"] / m["interior_error"]
            for m in members
            if np.isfinite(m["boundary_error"])
            and np.isfinite(m["interior_error"])
            and m["interior_error"] > 0
        ]
        real, pred = weighted("real_chroma"), weighted("pred_chroma")
        table[model][group] = {
            "instances": len(members),
            "pixels": int(area.sum()),
            "ab_error": weighted("ab_error"),
            "real_chroma": real,
            "pred_chroma": pred,
            "chroma_ratio": pred / real if real > 0 else float("nan"),
            "bleeding": float(np.mean(ratios)) if ratios else float("nan"),
        }
    return dict(table)


def category_frequency(coco) -> dict[str, int]:
    """Instances per category name in ``coco``, most frequent first (ties by name)."""
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    counts = Counter(names[a["category_id"]] for a in coco.dataset.get("annotations", []))
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def with_groups(rows: Sequence[Mapping], frequency: Mapping[str, int], frequent: int = 10):
    """Rows with a ``"group"`` key: ``person``, the head and background pseudo-categories, then
    ``frequent objects`` (the ``frequent`` most annotated other categories in ``frequency``)
    and ``rare objects`` (every other category), for :func:`summarise` ``by="group"``.

    Raises:
        ValueError: ``frequent < 0``.
    """
    if frequent < 0:
        raise ValueError(f"frequent must be >= 0, got {frequent}")
    objects = [name for name in frequency if name != "person"]
    common = set(objects[:frequent])
    grouped = []
    for row in rows:
        category = row["category"]
        if category in ("person", HEAD, BACKGROUND):
            group = category
        else:
            group = "frequent objects" if category in common else "rare objects"
        grouped.append({**row, "group": group})
    return grouped


def instance_crops(
    images: Sequence[Image.Image], bbox: tuple[int, int, int, int], margin: float = 0.15
) -> list[Image.Image]:
    """The same box, widened by ``margin`` of its size on each side, cut from every image.

    Raises:
        ValueError: images of different sizes, or an empty box.
    """
    if not images or len({image.size for image in images}) != 1:
        raise ValueError("instance_crops needs one or more images of one size")
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        raise ValueError(f"empty box {bbox}")
    width, height = images[0].size
    dx, dy = round(w * margin), round(h * margin)
    box = (max(0, x - dx), max(0, y - dy), min(width, x + w + dx), min(height, y + h + dy))
    return [image.crop(box) for image in images]
