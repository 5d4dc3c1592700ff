"""colorlib.evaluation.regions: per-category colour error inside COCO masks, on a hand-made
annotation file
whose answers are known (a red square "person", a blue "dog", a crowd box), and on coco-mini."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorlib.data.images import gray_baseline
from colorlib.evaluation import regions

H, W = 64, 80
RED, BLUE = (200, 30, 30), (30, 30, 200)


def _square(x, y, w, h):
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


@pytest.fixture
def scene(tmp_path):
    """One 80x64 photo: gray background, a red 'person' at (10, 4, 20, 50), a blue 'dog' at
    (50, 30, 20, 20), a crowd box at (0, 56, 80, 8); the annotation file and the photo."""
    pixels = np.full((H, W, 3), 128, dtype=np.uint8)
    pixels[4:54, 10:30] = RED
    pixels[30:50, 50:70] = BLUE
    photo = tmp_path / "000000000007.jpg"
    Image.fromarray(pixels).save(photo.with_suffix(".png"))
    photo = photo.with_suffix(".png")
    annotations = [
        {"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0, "area": 1000.0,
         "bbox": [10, 4, 20, 50], "segmentation": _square(10, 4, 20, 50)},
        {"id": 2, "image_id": 7, "category_id": 18, "iscrowd": 0, "area": 400.0,
         "bbox": [50, 30, 20, 20], "segmentation": _square(50, 30, 20, 20)},
        {"id": 3, "image_id": 7, "category_id": 1, "iscrowd": 1, "area": 640.0,
         "bbox": [0, 56, 80, 8], "segmentation": []},
    ]  # fmt: skip
    data = {
        "images": [
            {"id": 7, "file_name": "000000000007.jpg", "height": H, "width": W},
            {"id": 8, "file_name": "000000000008.jpg", "height": H, "width": W},
        ],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return regions.load_coco(path), photo, pixels


def _lab(pixels):
    return regions.rgb_to_lab_array(Image.fromarray(pixels))


def test_find_annotation_file_next_to_or_above_the_photos(tmp_path):
    images = tmp_path / "mini" / "images"
    images.mkdir(parents=True)
    photos = [images / "1.jpg", images / "2.jpg"]
    assert regions.find_annotation_file(photos) is None
    (tmp_path / "mini" / "annotations").mkdir()
    (tmp_path / "mini" / "annotations" / "instances.json").write_text("{}")
    assert regions.find_annotation_file(photos) == tmp_path / "mini/annotations/instances.json"
    (images / "instances_train2017_subset.json").write_text("{}")  # colorlib.data.coco's layout
    assert regions.find_annotation_file(photos) == images / "instances_train2017_subset.json"
    assert regions.find_annotation_file([images / "1.jpg", tmp_path / "x.jpg"]) is None
    assert regions.find_annotation_file([]) is None


def test_load_coco_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        regions.load_coco(tmp_path / "nope.json")


def test_annotated_photos_match_by_name_or_id_and_skip_unannotated(scene, tmp_path):
    coco, photo, _ = scene
    found = regions.annotated_photos(
        coco, [photo, tmp_path / "8.jpg", tmp_path / "000000000009.jpg", tmp_path / "7.png"]
    )
    assert found == {photo: 7, tmp_path / "7.png": 7}  # 8 has no annotation, 9 is unknown


def test_rgb_to_lab_array_matches_skimage():
    from skimage.color import rgb2lab

    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_allclose(_lab(pixels), rgb2lab(pixels), atol=1e-3)


def test_gray_prediction_errs_by_the_real_chroma_inside_each_mask(scene):
    coco, _, pixels = scene
    real = _lab(pixels)
    gray = real.copy()
    gray[..., 1:] = 0
    rows = {r.category: r for r in regions.instance_stats(coco, 7, real, gray)}
    assert set(rows) == {"person", "dog", regions.HEAD, regions.BACKGROUND}
    red_chroma = float(np.hypot(*_lab(np.array([[RED]], np.uint8))[0, 0, 1:]))
    person = rows["person"]
    assert person.area == 20 * 50 and person.bbox == (10, 4, 20, 50)
    assert person.ab_error == pytest.approx(red_chroma, rel=1e-6)
    assert person.real_chroma == pytest.approx(red_chroma, rel=1e-6)
    assert person.pred_chroma == pytest.approx(0.0, abs=1e-9)
    head = rows[regions.HEAD]  # the top fifth of the person's box
    assert head.area == 20 * 10 and head.bbox == (10, 4, 20, 10)
    # background: everything but the two objects and the crowd box, neutral gray already
    assert rows[regions.BACKGROUND].area == H * W - 1000 - 400 - 80 * 8
    assert rows[regions.BACKGROUND].ab_error < 1.0


def test_colour_leaking_across_an_edge_raises_the_boundary_error(scene):
    coco, _, pixels = scene
    real = _lab(pixels)
    exact = {r.category: r for r in regions.instance_stats(coco, 7, real, real)}
    assert exact["dog"].ab_error == 0 and exact["dog"].boundary_error == 0
    leaked = pixels.copy()
    leaked[30:50, 45:50] = BLUE  # blue bleeds 5 px left of the dog
    leaked[30:50, 50:52] = 128  # and the dog's left edge lost its colour
    rows = {r.category: r for r in regions.instance_stats(coco, 7, real, _lab(leaked))}
    dog = rows["dog"]
    assert dog.boundary_error > 5 * max(dog.interior_error, 1.0)
    assert dog.interior_error == pytest.approx(0.0, abs=1e-6)  # 3 px in: untouched


def test_instance_stats_rejects_bad_input(scene):
    coco, _, pixels = scene
    real = _lab(pixels)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        regions.instance_stats(coco, 7, real, real[:, :-1])
    with pytest.raises(ValueError, match="boundary_px"):
        regions.instance_stats(coco, 7, real, real, boundary_px=0)
    with pytest.raises(ValueError, match="one resolution"):
        regions.instance_stats(coco, 7, real[:32], real[:32])


def test_min_area_drops_small_regions(scene):
    coco, _, pixels = scene
    real = _lab(pixels)
    rows = regions.instance_stats(coco, 7, real, real, min_area=500)
    assert {r.category for r in rows} == {"person", regions.BACKGROUND}


def test_evaluate_regions_runs_colorizers_at_full_resolution(scene):
    coco, photo, _ = scene
    colorizers = {"gray": gray_baseline, "oracle": lambda gray: Image.open(photo).convert("RGB")}
    rows = regions.evaluate_regions(colorizers, {photo: 7}, coco, progress=False)
    assert {r["model"] for r in rows} == {"gray", "oracle"}
    table = regions.summarise(rows)
    assert table["oracle"]["person"]["ab_error"] < 0.5  # PNG: lossless, only Lab rounding
    assert table["gray"]["person"]["chroma_ratio"] < 0.05
    assert table["oracle"]["dog"]["chroma_ratio"] == pytest.approx(1.0, abs=0.01)
    with pytest.raises(ValueError, match="returned 10x10"):
        regions.evaluate_regions({"bad": lambda g: Image.new("RGB", (10, 10))}, {photo: 7}, coco)


def test_summarise_weights_by_pixels_and_filters_rare_groups():
    def row(category, area, error, real, pred, boundary, interior):
        return dict(model="m", category=category, area=area, ab_error=error, real_chroma=real,
                    pred_chroma=pred, boundary_error=boundary, interior_error=interior)  # fmt: skip

    rows = [
        row("cat", 100, 10.0, 40.0, 20.0, 12.0, 6.0),
        row("cat", 300, 2.0, 20.0, 20.0, float("nan"), 1.0),
        row("kite", 50, 1.0, 1.0, 1.0, 1.0, 1.0),
    ]
    table = regions.summarise(rows, min_instances=2)
    assert set(table["m"]) == {"cat"}
    cat = table["m"]["cat"]
    assert cat["instances"] == 2 and cat["pixels"] == 400
    assert cat["ab_error"] == pytest.approx((100 * 10 + 300 * 2) / 400)
    assert cat["chroma_ratio"] == pytest.approx(20.0 / 25.0)  # pooled: pred 20 over real 25
    assert cat["bleeding"] == pytest.approx(2.0)  # the NaN boundary is left out
    with pytest.raises(KeyError):
        regions.summarise([{"category": "x"}])


def test_category_frequency_counts_and_orders(scene):
    coco, _, _ = scene
    assert list(regions.category_frequency(coco).items()) == [("person", 2), ("dog", 1)]


def test_with_groups_splits_frequent_from_rare_objects():
    frequency = {"person": 90, "car": 30, "dog": 20, "kite": 2, "toaster": 1}
    rows = [{"category": c} for c in ("person", regions.HEAD, "car", "dog", "kite", "zebra")]
    groups = [r["group"] for r in regions.with_groups(rows, frequency, frequent=2)]
    assert groups == ["person", regions.HEAD, "frequent objects", "frequent objects",
                      "rare objects", "rare objects"]  # fmt: skip
    with pytest.raises(ValueError, match="frequent"):
        regions.with_groups(rows, frequency, frequent=-1)


def test_instance_crops_widen_and_clip_the_box():
    images = [Image.new("RGB", (80, 64)), Image.new("RGB", (80, 64))]
    crops = regions.instance_crops(images, (0, 10, 20, 20), margin=0.25)
    assert [c.size for c in crops] == [(25, 30), (25, 30)]  # clipped at x=0: 0..25, 5..35
    with pytest.raises(ValueError, match="one size"):
        regions.instance_crops([images[0], Image.new("RGB", (8, 8))], (0, 0, 4, 4))
    with pytest.raises(ValueError, match="empty box"):
        regions.instance_crops(images, (0, 0, 0, 4))


@pytest.mark.coco
@pytest.mark.skipif(not os.environ.get("COLORLIB_DATA"), reason="needs COLORLIB_DATA (coco-mini)")
def test_coco_mini_annotations_fit_their_photos():
    root = Path(os.environ["COLORLIB_DATA"])
    annotation_file = root / "annotations" / "instances.json"
    if not annotation_file.is_file():
        pytest.skip(f"no {annotation_file}")
    coco = regions.load_coco(annotation_file)
    photos = regions.annotated_photos(coco, sorted((root / "images").glob("*.jpg")))
    assert len(photos) > 400
    path, image_id = next(iter(photos.items()))
    real = regions.rgb_to_lab_array(Image.open(path).convert("RGB"))
    rows = regions.instance_stats(coco, image_id, real, real)
    assert rows and all(r.ab_error == 0 for r in rows)
    assert next(iter(regions.category_frequency(coco))) == "person"  # 946 of 3866
