"""Photos in, ``(L, ab)`` training pairs out: sources, filtering, splits, datasets and loaders.

The pipeline a chapter runs with one call, :func:`load_datasets`:

1. :func:`resolve_photos` picks the source, in this order: an explicit folder or list of paths;
   the folder named by ``COLORLIB_DATA``; a COCO 2017 subset (``colorlib.data.coco``) when COCO's
   server answers; the handful of photos bundled with scikit-image, scikit-learn and matplotlib
   (``colorlib.data.samples``). It prints one line saying which.
2. ``colorlib.data.grayscan.scan_photos`` drops black-and-white and unreadable photos (cached).
3. A seeded trim to ``profile.num_images`` and a seeded :func:`train_val_split`.
4. :class:`ColorizationDataset` decodes with PIL (JPEGs at reduced scale when the crop is
   small), crops and resizes in one PIL call, and converts to Lab in float32 torch
   (``colorlib.color``); :func:`make_loader` wraps it with device-aware ``DataLoader`` defaults.

A file that turns out unreadable during training never stops an epoch: the dataset serves the
next readable photo in its list instead (deterministically) and records the skip.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms.functional import pil_to_tensor

from colorlib.color import rgb8_to_L_ab
from colorlib.data.grayscan import scan_photos
from colorlib.data.images import IMAGE_EXTENSIONS, UnreadableImage, load_rgb
from colorlib.runtime import Profile, get_device, get_profile

__all__ = [
    "find_images",
    "train_val_split",
    "ColorizationDataset",
    "make_loader",
    "resolve_photos",
    "load_datasets",
]

#: File suffixes (lower case) that :func:`find_images` treats as photos.


def find_images(root: str | os.PathLike) -> list[Path]:
    """All image files under ``root`` (recursively, hidden files and folders skipped), sorted.

    Raises:
        ValueError: ``root`` is not an existing folder.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ValueError(f"photo folder {str(root)!r} does not exist or is not a folder")
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        found += [
            Path(folder, f)
            for f in files
            if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS
        ]
    return sorted(found)


def train_val_split(paths, val_fraction: float, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Seeded random split into disjoint train and validation lists.

    The result depends only on the *set* of paths, ``val_fraction`` and ``seed``: paths are
    de-duplicated and sorted before the seeded shuffle, so listing order does not matter.

    Args:
        paths: image files.
        val_fraction: share held out, in [0, 1). When positive and there are at least two
            photos, each side gets at least one.
        seed: shuffle seed.

    Returns:
        ``(train, val)``, each sorted.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    ordered = sorted({Path(p) for p in paths})
    random.Random(seed).shuffle(ordered)
    num_val = round(len(ordered) * val_fraction)
    if val_fraction > 0 and len(ordered) >= 2:
        num_val = min(max(num_val, 1), len(ordered) - 1)
    return sorted(ordered[num_val:]), sorted(ordered[:num_val])


class ColorizationDataset(Dataset):
    """Photos as normalised ``(L, ab)`` pairs for colorization.

    Args:
        paths: image files (check them first with ``colorlib.data.grayscan.scan_photos``).
        image_size: side ``S`` of the square output.
        train: ``True``: random resized crop (area share in ``scale``, aspect 3/4 to 4/3) and
            random horizontal flip, drawn from torch's RNG (seeded per DataLoader worker).
            ``False``: deterministic resize of the shorter side to ``S`` and centre crop.
        scale: area range of the training crop, as a share of the photo.

    Item ``i`` is ``(L, ab)``: ``L`` ``(1, S, S)`` in [-1, 1], ``ab`` ``(2, S, S)`` about
    [-1, 1], float32. Unreadable files are replaced by the next readable photo in the list;
    :attr:`skipped` reports them (also for files found bad inside DataLoader workers).

    Example:
        >>> L, ab = ColorizationDataset(paths, 256, train=True)[0]  # doctest: +SKIP
        >>> L.shape, ab.shape
        (torch.Size([1, 256, 256]), torch.Size([2, 256, 256]))
    """

    def __init__(
        self,
        paths,
        image_size: int,
        train: bool,
        *,
        scale: tuple[float, float] = (0.5, 1.0),
    ) -> None:
        if not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale!r}")
        self.paths = [Path(p) for p in paths]
        self.image_size = image_size
        self.train = train
        self.scale = scale
        # JPEGs may decode at 1/2..1/8 scale as long as the smallest crop keeps >= S pixels.
        self._decode_side = math.ceil(image_size / math.sqrt(scale[0])) if train else image_size
        # Shared memory, so that files found bad inside DataLoader workers are seen here too.
        self._failed = torch.zeros(len(self.paths), dtype=torch.bool).share_memory_()
        self._reasons: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        count = len(self.paths)
        if not -count <= index < count:
            raise IndexError(f"index {index} out of range for {count} photos")
        for step in range(count):
            i = (index + step) % count  # the substitute is the next readable photo
            if self._failed[i]:
                continue
            try:
                image = load_rgb(self.paths[i], min_side=self._decode_side)
            except (UnreadableImage, OSError) as error:
                self._failed[i] = True
                self._reasons[i] = getattr(error, "reason", str(error))
                continue
            return self._to_pair(image)
        raise RuntimeError(
            f"none of the {count} photos of this dataset is readable: {self.skipped}"
        )

    def _crop_box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """Crop rectangle (left, top, right, bottom) in source pixels."""
        if self.train:
            area = width * height
            for _ in range(10):  # torchvision's RandomResizedCrop rule
                target = area * (self.scale[0] + (self.scale[1] - self.scale[0]) * _uniform())
                aspect = math.exp(math.log(3 / 4) + math.log(16 / 9) * _uniform())
                crop_w = round(math.sqrt(target * aspect))
                crop_h = round(math.sqrt(target / aspect))
                if 0 < crop_w <= width and 0 < crop_h <= height:
                    left = int(torch.randint(0, width - crop_w + 1, ()))
                    top = int(torch.randint(0, height - crop_h + 1, ()))
                    return left, top, left + crop_w, top + crop_h
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        return left, top, left + side, top + side

    def _to_pair(self, image: Image.Image) -> tuple[Tensor, Tensor]:
        size = self.image_size
        box = self._crop_box(*image.size)
        # One PIL call crops and resizes (antialiased when shrinking).
        image = image.resize((size, size), Image.Resampling.BILINEAR, box=box)
        if self.train and _uniform() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        # (3, S, S) uint8, contiguous so the Lab maths runs on dense channel planes; the 8-bit
        # path replaces the sRGB power curve by an exact lookup table
        return rgb8_to_L_ab(pil_to_tensor(image).contiguous())

    @property
    def skipped(self) -> dict[Path, str]:
        """Files found unreadable so far -> reason (including those found in workers)."""
        report = {}
        for i in torch.nonzero(self._failed).flatten().tolist():
            if i not in self._reasons:  # found in a worker process: ask the file again
                try:
                    load_rgb(self.paths[i], min_side=self._decode_side)
                    self._reasons[i] = "unreadable in a worker, readable now"
                except (UnreadableImage, OSError) as error:
                    self._reasons[i] = getattr(error, "reason", str(error))
            report[self.paths[i]] = self._reasons[i]
        return report

    def __repr__(self) -> str:
        mode = "train" if self.train else "eval"
        return f"ColorizationDataset({len(self)} photos, {self.image_size}px, {mode})"


def _uniform() -> float:
    return float(torch.rand(()))


def _default_num_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return min(get_profile().num_workers, cores)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    train: bool,
    device: str | torch.device | None = None,
    num_workers: int | None = None,
    sampler: Sampler | None = None,
) -> DataLoader:
    """A ``DataLoader`` with defaults that suit the device.

    Args:
        dataset: e.g. a :class:`ColorizationDataset`.
        batch_size: photos per batch.
        train: shuffle (unless a ``sampler`` is given) and drop the last incomplete batch (kept
            when the dataset is smaller than one batch, so an epoch is never empty).
        device: where batches go; ``None``: ``colorlib.runtime.get_device()``. Memory is pinned
            for CUDA.
        num_workers: loader processes; ``None``: the profile's ``num_workers``, at most the
            number of CPU cores. Workers stay alive between epochs.
        sampler: optional sampler (e.g. ``DistributedSampler``); replaces shuffling.

    Returns:
        A ``DataLoader`` yielding ``(L (B, 1, S, S), ab (B, 2, S, S))`` on the CPU.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    device = torch.device(device) if device is not None else get_device()
    workers = _default_num_workers() if num_workers is None else num_workers
    if workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {workers}")
    num_items = len(sampler) if sampler is not None else len(dataset)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=train and num_items >= batch_size,
        persistent_workers=workers > 0,
    )


def _explicit_photos(data) -> tuple[list[Path], str]:
    if isinstance(data, (str, os.PathLike)):
        path = Path(data).expanduser()
        if path.is_file():
            return [path], str(path)
        photos = find_images(path)
        if not photos:
            raise ValueError(f"no images in {str(path)!r} (looked for {sorted(IMAGE_EXTENSIONS)})")
        return photos, str(path)
    photos = [Path(p) for p in data]
    if not photos:
        raise ValueError("data is an empty list of photos")
    return photos, "the given list"


def _coco_photos(num_images: int) -> list[Path] | None:
    try:
        from colorlib.data.coco import coco_reachable, download_coco_subset
    except ImportError:
        return None
    if not coco_reachable():
        return None
    try:
        return download_coco_subset(num_images)
    except (OSError, RuntimeError, ValueError) as error:
        print(f"colorlib data: COCO download failed ({error}); using the bundled photos instead")
        return None


def resolve_photos(data=None, profile: Profile | None = None) -> list[Path]:
    """Find the photos to learn from, and print one line saying where they come from.

    Sources, first match wins: ``data`` (a folder, a single file or a list of paths); the folder
    in ``$COLORLIB_DATA``; a COCO 2017 subset of ``profile.num_images`` photos (downloaded once
    by ``colorlib.data.coco`` when its server answers); the photos bundled with scikit-image,
    scikit-learn and matplotlib (a tiny fallback that runs the code but cannot train a model).

    Raises:
        ValueError: an explicit or ``COLORLIB_DATA`` folder that is missing or has no images.
    """
    if data is not None:
        photos, where = _explicit_photos(data)
        print(f"colorlib data: {len(photos)} photos from {where}")
        return photos
    env = os.environ.get("COLORLIB_DATA")
    if env:
        photos, where = _explicit_photos(env)
        print(f"colorlib data: {len(photos)} photos from {where} (COLORLIB_DATA)")
        return photos
    profile = profile or get_profile()
    photos = _coco_photos(profile.num_images)
    if photos:
        print(f"colorlib data: {len(photos)} COCO 2017 photos (downloaded subset)")
        return photos
    from colorlib.data.samples import bundled_sample_paths

    photos = bundled_sample_paths()
    print(
        f"colorlib data: no folder given, COLORLIB_DATA unset and COCO unreachable; using the "
        f"{len(photos)} photos bundled with scikit-image/scikit-learn/matplotlib. This tiny "
        f"fallback runs the code but cannot train a useful model: set COLORLIB_DATA to a folder."
    )
    return photos


def load_datasets(
    profile: Profile, data=None, seed: int = 0
) -> tuple[ColorizationDataset, ColorizationDataset]:
    """Resolve the photos, drop gray and unreadable ones, trim and split: ``(train, val)``.

    Args:
        profile: supplies ``num_images``, ``val_fraction`` and ``image_size``.
        data: optional folder or list of photos (see :func:`resolve_photos`).
        seed: seeds the trim to ``num_images`` and the split.

    Returns:
        Training set (random crops and flips) and validation set (deterministic centre crops).
    """
    photos = resolve_photos(data, profile)
    scan = scan_photos(photos)
    print(f"colorlib data: {scan.summary()}")
    usable = sorted(set(scan.color))
    if not usable:
        raise ValueError(f"no usable colour photos among {len(photos)}: {scan.summary()}")
    if len(usable) > profile.num_images:
        usable = random.Random(seed).sample(usable, profile.num_images)
    train, val = train_val_split(usable, profile.val_fraction, seed)
    size = profile.image_size
    print(f"colorlib data: {len(train)} train / {len(val)} validation photos at {size}x{size}")
    return ColorizationDataset(train, size, train=True), ColorizationDataset(val, size, train=False)
