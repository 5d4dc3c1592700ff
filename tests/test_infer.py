"""colorlib.inference: full-resolution colorization keeps size and lightness, for every input
kind."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakes import png_header
from PIL import Image
from skimage import color as skcolor
from torch import Tensor, nn

from colorlib import inference as infer
from colorlib import inference_memory
from colorlib.color import L_ab_to_rgb, rgb_to_L_ab
from colorlib.data.images import gray_baseline, to_rgb_tensor
from colorlib.inference import (
    colorize,
    colorize_iter,
    colorize_L_ab,
    fit_to_gamut,
    is_released_ddcolor,
    load_colorizer,
    model_input_size,
)


class TinyColorizer(nn.Module):
    """A random conv net whose (strong) colours depend on L; records the input shapes."""

    def __init__(self, gain: float = 20.0, required_multiple: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 2, 3, padding=1)
        )
        with torch.no_grad():
            self.net[2].weight.mul_(gain)
        if required_multiple is not None:
            self.required_multiple = required_multiple
        self.seen: list[tuple[int, ...]] = []
        self.training_during_forward: list[bool] = []

    def forward(self, L):
        self.seen.append(tuple(L.shape))
        self.training_during_forward.append(self.training)
        return self.net(L)


class ConstantAB(nn.Module):
    """Predicts the same (possibly absurd) ab everywhere."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.ab = nn.Parameter(torch.tensor([a, b]).view(1, 2, 1, 1))

    def forward(self, L):
        return self.ab.expand(L.shape[0], 2, *L.shape[-2:])


def _lab(image: Image.Image) -> np.ndarray:
    """scikit-image's Lab of an 8-bit image: the independent reference."""
    return skcolor.rgb2lab(np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0)


def _gray_image(width=97, height=61, seed=0) -> Image.Image:
    # a smooth gradient with noise: realistic enough to have every lightness
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, width)[None, :] * np.linspace(0.2, 1, height)[:, None]
    noisy = np.clip(x + rng.normal(0, 20, (height, width)), 0, 255).astype(np.uint8)
    return Image.fromarray(noisy, mode="L")


def _colour_image(width=61, height=97, seed=1) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), mode="RGB")


def test_colorize_keeps_size_and_lightness_of_odd_gray_image():
    gray = _gray_image(97, 61)
    out = colorize(TinyColorizer(), gray, size=32)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (97, 61)
    lab_in, lab_out = _lab(gray), _lab(out)
    # the same lightness up to 8-bit rounding of the RGB output...
    assert np.abs(lab_out[..., 0] - lab_in[..., 0]).max() < 0.5
    assert np.abs(lab_out[..., 0] - lab_in[..., 0]).mean() < 0.15
    # ...and real colour was added (otherwise the check above would be vacuous)
    assert np.hypot(lab_out[..., 1], lab_out[..., 2]).mean() > 10


def test_colorize_keeps_lightness_of_colour_photo():
    photo = _colour_image(61, 97)
    out = colorize(TinyColorizer(), photo, size=64)
    assert out.size == photo.size
    assert np.abs(_lab(out)[..., 0] - _lab(photo)[..., 0]).max() < 0.5


def test_colorize_accepts_pil_arrays_and_paths_alike(tmp_path):
    gray = _gray_image(45, 33)
    path = tmp_path / "gray.png"
    gray.save(path)
    array = np.asarray(gray)
    inputs = [gray, gray.convert("RGB"), array, array / 255.0, np.stack([array] * 3, -1), path]
    inputs.append(str(path))
    model = TinyColorizer()
    outputs = [np.asarray(colorize(model, x, size=32), dtype=np.int16) for x in inputs]
    for output in outputs[1:]:
        assert np.abs(output - outputs[0]).max() <= 1  # float input: rounding differences only


class PointwiseColorizer(nn.Module):
    """ab from L by products and sums only, pixel by pixel: IEEE-754 rounds each of them
    correctly, so the result of every pixel is the same bits whatever the batch."""

    def forward(self, L):
        return torch.cat([0.9 * L, 0.6 - 0.8 * L * L], dim=1)


def _per_photo_outputs(model: TinyColorizer, calls: list[Tensor]) -> list[Tensor]:
    """Split the recorded batched outputs of ``model`` into one tensor per photo."""
    return [one for batch in calls for one in batch]


def test_colorize_batches_a_list_of_mixed_sizes_like_single_calls():
    images = [_gray_image(97, 61), _colour_image(40, 50), _gray_image(33, 90, seed=3)]
    model = TinyColorizer()
    outputs: list[Tensor] = []
    model.register_forward_hook(lambda m, args, out: outputs.append(out.detach().clone()))
    batched = colorize(model, images, size=32, batch_size=2)
    assert [image.size for image in batched] == [image.size for image in images]
    assert model.seen == [(2, 1, 32, 32), (1, 1, 32, 32)]
    batched_ab = _per_photo_outputs(model, outputs)
    outputs.clear()
    singles = [colorize(model, image, size=32) for image in images]
    single_ab = _per_photo_outputs(model, outputs)
    # The network sees the same input for a photo whatever the batch; a convolution over a
    # batch of 2 may sum in another order than over a batch of 1 (CPU kind, kernel, threads),
    # so the float ab agree to float32 rounding of sums of ~80 terms of size <= 20, not bits.
    for one, many in zip(single_ab, batched_ab, strict=True):
        torch.testing.assert_close(one, many, rtol=1e-5, atol=1e-4)
    # The 8-bit photos then differ only by what such an ab difference can flip: whether a
    # pixel on the sRGB boundary gets its chroma scaled (by 1 - 2**-8 at most: 8 halvings,
    # <= 0.6 Lab units, about 2 levels) and the 8-bit rounding (1 level).
    for one, many in zip(singles, batched, strict=True):
        assert np.abs(np.asarray(one, np.int16) - np.asarray(many, np.int16)).max() <= 4
    assert colorize(model, [], size=32) == []


def test_colorize_after_the_network_is_the_same_bits_batched_or_single():
    # Everything after the network runs photo by photo on the same shapes in one process, so
    # with a network whose output is batch-independent to the bit (products and sums only),
    # batched and single calls give identical photos: guaranteed, not a CPU's luck.
    images = [_gray_image(97, 61), _colour_image(40, 50), _gray_image(33, 90, seed=3)]
    model = PointwiseColorizer()
    batched = colorize(model, images, size=32, batch_size=2)
    singles = [colorize(model, image, size=32) for image in images]
    for one, many in zip(singles, batched, strict=True):
        assert np.array_equal(np.asarray(one), np.asarray(many))
        assert np.asarray(one).std(axis=-1).mean() > 1  # it coloured something


def test_keep_aspect_rounds_to_the_models_multiple():
    model = TinyColorizer(required_multiple=16)
    images = [_gray_image(100, 50), _gray_image(50, 100), _gray_image(101, 51)]
    out = colorize(model, images, size=32, keep_aspect=True, batch_size=3)
    assert [image.size for image in out] == [(100, 50), (50, 100), (101, 51)]
    # same model size -> same batch: (100, 50) and (101, 51) both become 32 x 64
    assert sorted(model.seen) == [(1, 1, 64, 32), (2, 1, 32, 64)]


def test_model_input_size():
    assert model_input_size(61, 97, 256) == (256, 256)
    assert model_input_size(61, 97, 256, keep_aspect=True) == (256, 416)  # 407 -> 416
    assert model_input_size(3000, 4000, 512, keep_aspect=True, multiple=32) == (512, 672)
    assert model_input_size(10, 1000, 32, keep_aspect=True, multiple=32) == (32, 3200)
    with pytest.raises(ValueError, match="size"):
        model_input_size(10, 10, 0)


def test_colorize_restores_every_training_flag():
    model = TinyColorizer()
    model.train()
    model.net[0].eval()  # a frozen part, as in a fine-tuned encoder
    flags = [m.training for m in model.modules()]
    colorize(model, _gray_image(), size=32)
    assert model.training_during_forward == [False]
    assert [m.training for m in model.modules()] == flags
    # also when the forward pass fails
    model.forward = lambda L: torch.zeros(1)
    with pytest.raises(ValueError, match="ab of shape"):
        colorize(model, _gray_image(), size=32)
    assert [m.training for m in model.modules()] == flags


def test_colorize_iter_does_not_leak_inference_mode_or_eval():
    model = TinyColorizer().train()
    for image in colorize_iter(model, [_gray_image()] * 3, size=32, batch_size=2):
        assert image.size == (97, 61)
        assert not torch.is_inference_mode_enabled()
        assert model.training


def test_absurd_ab_is_clamped_into_the_gamut_keeping_lightness():
    L, _ = rgb_to_L_ab(to_rgb_tensor(_colour_image(20, 10))[None])
    ab = colorize_L_ab(ConstantAB(5.0, -3.0), L, size=32)
    assert ab.shape == (1, 2, 10, 20) and not ab.is_inference()
    assert ab.abs().max() <= 1.0
    rgb = L_ab_to_rgb(L, ab, clip=False)
    assert rgb.min() > -1e-3 and rgb.max() < 1 + 1e-3  # displayable without clipping
    out = colorize(ConstantAB(5.0, -3.0), _gray_image(), size=32)
    assert np.abs(_lab(out)[..., 0] - _lab(_gray_image())[..., 0]).max() < 0.5


def test_fit_to_gamut_keeps_in_gamut_colours_and_the_hue_of_others():
    L, ab = rgb_to_L_ab(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(fit_to_gamut(L, ab), ab)  # real colours are left alone
    strong = ab * 4
    fitted = fit_to_gamut(L, strong)
    scale = fitted.norm(dim=1) / strong.norm(dim=1).clamp(min=1e-8)
    assert (scale <= 1).all() and (scale < 1).any()
    # the direction (hue) is kept: fitted is a non-negative multiple of the clamped request
    clamped = strong.clamp(-1, 1)
    cross = fitted[:, 0] * clamped[:, 1] - fitted[:, 1] * clamped[:, 0]
    assert cross.abs().max() < 1e-6
    rgb = L_ab_to_rgb(L, fitted, clip=False)
    assert rgb.min() > -1e-3 and rgb.max() < 1 + 1e-3


def test_gray_baseline_is_gray_with_the_same_lightness():
    photo = _colour_image(31, 17)
    gray = gray_baseline(photo)
    rgb = np.asarray(gray, dtype=np.int16)
    assert gray.size == photo.size
    assert np.abs(rgb - rgb[..., :1]).max() <= 1  # R = G = B
    assert np.abs(_lab(gray)[..., 0] - _lab(photo)[..., 0]).max() < 0.5
    assert [g.size for g in gray_baseline([photo, _gray_image()])] == [(31, 17), (97, 61)]


def test_to_rgb_tensor_reads_unusual_modes():
    sixteen = Image.fromarray(np.full((4, 5), 65535 // 2, dtype=np.uint16))
    assert sixteen.mode.startswith("I;16")
    assert torch.allclose(to_rgb_tensor(sixteen), torch.full((3, 4, 5), 0.5), atol=1e-4)
    clear = Image.new("RGBA", (3, 2), (255, 0, 0, 0))  # fully transparent red: white
    assert torch.equal(to_rgb_tensor(clear), torch.ones(3, 2, 3))
    assert to_rgb_tensor(np.zeros((4, 5, 4), np.uint8)).shape == (3, 4, 5)  # alpha dropped


@pytest.mark.parametrize(
    "bad, error, words",
    [
        (np.full((4, 4), 1.5), ValueError, r"\[0, 1\]"),
        (np.zeros((4, 4), dtype=np.int64), TypeError, "int64"),
        (np.zeros((4, 4, 2), dtype=np.uint8), ValueError, "shape"),
        (np.zeros((0, 4), dtype=np.uint8), ValueError, "empty"),
        (torch.zeros(3, 4, 4), TypeError, "Tensor"),
        ("no/such/photo.jpg", FileNotFoundError, "photo.jpg"),
    ],
)
def test_colorize_rejects_bad_inputs(bad, error, words):
    with pytest.raises(error, match=words):
        colorize(TinyColorizer(), bad, size=32)


def test_unreadable_file_raises_unreadable_image(tmp_path):
    from colorlib.data.images import UnreadableImage

    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png at all")
    with pytest.raises(UnreadableImage, match="junk.png"):
        colorize(TinyColorizer(), junk, size=32)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="batch_size"):
        colorize(TinyColorizer(), _gray_image(), batch_size=0)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        colorize_L_ab(TinyColorizer(), torch.zeros(1, 3, 8, 8))


def test_colorize_on_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model = TinyColorizer()
    on_cpu = np.asarray(colorize(model, _gray_image(), size=32), np.int16)
    on_gpu = np.asarray(colorize(model, _gray_image(), size=32, device="cuda"), np.int16)
    assert next(model.parameters()).is_cuda
    assert np.abs(on_cpu - on_gpu).max() <= 1


def test_load_colorizer_errors_and_released_detection(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_colorizer(tmp_path / "missing.pt")
    released = tmp_path / "ddcolor_paper_tiny.pth"
    torch.save({"params": {"w": torch.zeros(2)}}, released)
    assert is_released_ddcolor(released)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"garbage")
    assert not is_released_ddcolor(junk)
    torch.save({"config": {}, "params": {}}, tmp_path / "ours.pt")
    assert not is_released_ddcolor(tmp_path / "ours.pt")


def test_inference_names_are_its_own_and_documented():
    # one home per name: inference defines what it exports (no re-export of another stage's
    # functions), and each public function says what it does
    for name in infer.__all__:
        obj = getattr(infer, name)
        if callable(obj):
            assert obj.__module__ == "colorlib.inference", f"{name} is re-exported"
            assert obj.__doc__ and len(obj.__doc__.split()) >= 5, f"{name} has no docstring"


def test_released_checkpoint_of_unknown_width_is_named(tmp_path):
    odd = tmp_path / "odd.pth"
    torch.save(
        {"params": {"encoder.arch.downsample_layers.0.0.weight": torch.zeros(8, 3, 4, 4)}}, odd
    )
    with pytest.raises(ValueError, match="96 or 192"):
        load_colorizer(odd)


@pytest.mark.slow
def test_released_ddcolor_tiny_checkpoint_loads_and_colorizes(tmp_path):
    from colorlib.models.ddcolor import DDColor

    released = tmp_path / "ddcolor_paper_tiny.pth"
    torch.save({"params": DDColor.tiny(pretrained=False).state_dict()}, released)
    generator, size = load_colorizer(released)
    assert isinstance(generator, DDColor) and size == 512 and not generator.training
    gray = _gray_image(97, 61)
    out = colorize(generator, gray, size=64, keep_aspect=True)
    assert out.size == (97, 61)
    assert np.abs(_lab(out)[..., 0] - _lab(gray)[..., 0]).max() < 0.5


def test_colorize_is_exported_at_the_top_level():
    import colorlib

    assert colorlib.colorize is colorize


@pytest.mark.coco
def test_colorize_real_coco_photos_including_a_gray_one():
    import csv
    import os
    from pathlib import Path

    root = os.environ.get("COLORLIB_DATA")
    if not root or not (Path(root) / "manifest.csv").is_file():
        pytest.skip("set COLORLIB_DATA to the coco-mini folder (with manifest.csv)")
    with open(Path(root) / "manifest.csv") as file:
        rows = list(csv.DictReader(file))
    picks = [next(r for r in rows if r["gray"] == "1"), next(r for r in rows if r["gray"] == "0")]
    paths = [Path(root) / "images" / row["file"] for row in picks]
    outputs = colorize(TinyColorizer(), paths, size=64, batch_size=2)
    for path, out in zip(paths, outputs, strict=True):
        photo = Image.open(path)
        assert out.size == photo.size
        assert np.abs(_lab(out)[..., 0] - _lab(photo)[..., 0]).max() < 0.5


# ----------------------------------------------------------------------------- large photos


@pytest.mark.parametrize(
    "small, full",
    [((12, 16), (97, 131)), ((200, 16), (97, 131)), ((150, 300), (97, 131)), ((1, 1), (50, 40))],
    ids=["enlarge", "shrink-height", "shrink-both", "one-pixel"],
)
def test_resizing_in_strips_matches_resizing_at_once(monkeypatch, small, full):
    x = torch.rand(2, 2, *small, generator=torch.Generator().manual_seed(0)) * 2 - 1
    height, width = full
    shrinking = height < small[0] or width < small[1]
    whole = F.interpolate(x, size=full, mode="bilinear", align_corners=False, antialias=shrinking)
    monkeypatch.setattr(inference_memory, "STRIP_PIXELS", 7 * width)  # 7 rows, the last fewer
    strips = list(inference_memory.resized_rows(x, height, width))
    assert [(top, end) for top, end, _ in strips] == [
        (top, min(top + 7, height)) for top in range(0, height, 7)
    ]
    assert all(rows.shape == (2, 2, end - top, width) for top, end, rows in strips)
    # the same numbers up to float32 rounding (sums of a few products of values <= 1)
    together = torch.cat([rows for _, _, rows in strips], dim=-2)
    torch.testing.assert_close(together, whole, rtol=0, atol=1e-6)
    monkeypatch.setattr(inference_memory, "STRIP_PIXELS", height * width)
    ((top, end, rows),) = inference_memory.resized_rows(x, height, width)  # one strip: at once
    assert (top, end) == (0, height) and torch.equal(rows, whole)


@pytest.mark.parametrize("keep_aspect", [False, True])
def test_colorize_in_strips_matches_one_strip(monkeypatch, keep_aspect):
    photos = [_gray_image(97, 61), _colour_image(61, 97)]
    L = [rgb_to_L_ab(to_rgb_tensor(photo)[None])[0] for photo in photos]
    model = TinyColorizer(gain=20.0)  # strong colours: most pixels need the gamut fit

    def run():
        ab = [colorize_L_ab(model, one, size=32, keep_aspect=keep_aspect) for one in L]
        rgb = colorize(model, photos, size=32, keep_aspect=keep_aspect, batch_size=2)
        return ab, [np.asarray(image, np.int16) for image in rgb]

    ab_one, rgb_one = run()
    assert inference_memory.row_strips(61, 97) == [(0, 61)]
    monkeypatch.setattr(inference_memory, "STRIP_PIXELS", 5 * 97)  # 5-row strips, then 1 row
    assert len(inference_memory.row_strips(61, 97)) == 13
    ab_strips, rgb_strips = run()
    assert model.seen[: len(model.seen) // 2] == model.seen[len(model.seen) // 2 :]
    for one, strips, photo_one, photo_strips in zip(
        ab_one, ab_strips, rgb_one, rgb_strips, strict=True
    ):
        assert strips.shape == one.shape
        # Equal up to float32 rounding of the upsampling (1e-7 in ab), except where that
        # rounding flips the gamut test of a pixel on the sRGB boundary: the bisection then
        # ends one step apart, so its ab differ by at most 2**-8 (ab is within [-1, 1]).
        diff = (strips - one).abs().amax(dim=1)
        rounding = diff <= 1e-6
        assert rounding.float().mean() >= 0.995
        assert diff.max() <= 2**-8 + 1e-6
        # the 8-bit photos: the same, but for such pixels (<= 0.6 Lab units, about 2 levels)
        # and 8-bit rounding flips (1 level)
        levels = np.abs(photo_strips - photo_one)
        assert levels.max() <= 4 and (levels > 0).any(axis=-1).mean() <= 0.005


def _inputs_of_every_kind() -> dict:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 23, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (37, 23, 4), dtype=np.uint8)
    deep = rng.integers(0, 65536, (37, 23), dtype=np.uint16)
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 3  # one transparent entry: composited on white
    return {
        "RGB": Image.fromarray(rgb),
        "L": Image.fromarray(rgb[..., 0]),
        "RGBA": Image.fromarray(alpha, mode="RGBA"),
        "P": palette,
        "CMYK": Image.fromarray(rgb).convert("CMYK"),
        "I;16": Image.fromarray(deep),
        "F": Image.fromarray(rng.random((37, 23), dtype=np.float32) * 300),  # range from all
        "uint8 HxWx4": alpha,
        "uint16 HxW": deep,
        "bool": rgb[..., 0] > 128,
        "float": rng.random((37, 23, 3)),
    }


@pytest.mark.parametrize("kind", sorted(_inputs_of_every_kind()) + ["path"])
def test_lightness_in_strips_matches_at_once(monkeypatch, tmp_path, kind):
    image = _inputs_of_every_kind()["RGB" if kind == "path" else kind]
    whole = rgb_to_L_ab(to_rgb_tensor(image))[0][None]
    if kind == "path":
        image = tmp_path / "photo.png"
        _inputs_of_every_kind()["RGB"].save(image)
    monkeypatch.setattr(inference_memory, "STRIP_PIXELS", 23 * 4)  # 4-row strips
    strips = inference_memory.photo_lightness(image)
    torch.testing.assert_close(strips, whole, rtol=0, atol=1e-6)


def test_the_network_input_is_capped_with_a_message(capsys):
    assert infer.MAX_MODEL_SIDE == 2048
    model = TinyColorizer(required_multiple=32)
    panorama = _gray_image(3000, 100)  # at size 256 with its aspect kept: 256 x 7680
    out = colorize(model, panorama, size=256, keep_aspect=True)
    assert out.size == (3000, 100)
    assert model.seen == [(1, 1, 64, 2048)]  # the longer side at the cap, the aspect about kept
    said = capsys.readouterr().err
    assert said.startswith("[colorlib]") and said.count("\n") == 1
    assert "3000x100" in said and "7680x256" in said and "MAX_MODEL_SIDE=2048" in said
    assert "2048x64" in said
    assert np.abs(_lab(out)[..., 0] - _lab(panorama)[..., 0]).max() < 0.5
    # square inputs too, and the tensor-level function
    L, _ = rgb_to_L_ab(to_rgb_tensor(_gray_image())[None])
    assert colorize_L_ab(model, L, size=4096).shape == (1, 2, 61, 97)
    assert model.seen[-1] == (1, 1, 2048, 2048)
    assert "4096x4096" in capsys.readouterr().err
    colorize(model, _gray_image(), size=32, keep_aspect=True)  # under the cap: nothing said
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "height, width, size, keep_aspect",
    [(1, 5000, 32, True), (5000, 7, 64, True), (300, 1000, 1024, True), (50, 60, 3000, False)],
)
def test_capped_network_inputs_fit_and_keep_the_multiple(height, width, size, keep_aspect):
    model = TinyColorizer(required_multiple=32)
    out = colorize(model, np.zeros((height, width), np.uint8), size=size, keep_aspect=keep_aspect)
    assert out.size == (width, height)
    (seen,) = model.seen
    assert max(seen[-2:]) == 2048 and all(side % 32 == 0 for side in seen[-2:])


def test_a_108_megapixel_file_passes_the_size_check_and_a_bigger_one_does_not(tmp_path):
    # A 12000x9000 file (108 M pixels, a medium-format or phone photo) is under MAX_PIXELS:
    # the header-only file below then fails as corrupt data, not as a bomb. Over the limit,
    # the header alone is enough to refuse it, before a pixel is decoded.
    from colorlib.data.images import UnreadableImage

    path = tmp_path / "large.png"
    path.write_bytes(png_header(12000, 9000))
    with pytest.raises(UnreadableImage) as error:
        colorize(TinyColorizer(), path, size=32, keep_aspect=True)
    assert "decompression bomb" not in str(error.value)
    path.write_bytes(png_header(15000, 12000))  # 180 M pixels
    with pytest.raises(UnreadableImage, match="decompression bomb"):  # PIL and colorlib agree
        colorize(TinyColorizer(), path, size=32, keep_aspect=True)


MEMORY_PROBE = r"""
import json, re
import numpy as np, torch
from PIL import Image
from colorlib.color import rgb_to_L_ab
from colorlib.data.images import to_rgb_tensor
from colorlib.inference import colorize, model_input_size
from colorlib.inference_memory import STRIP_PIXELS
from colorlib.models.ddcolor import build_ddcolor

def status(field):
    with open("/proc/self/status") as file:
        return 1024 * int(re.search(field + r":\s+(\d+)", file.read())[1])

torch.set_num_threads(1)
torch.manual_seed(0)
width, height, size = 6000, 4500, 256
model = build_ddcolor("micro", pretrained=False).eval()
rows = np.arange(height, dtype=np.uint32)[:, None] * 7 % 200
photo = Image.fromarray((rows + np.arange(width, dtype=np.uint32) % 53).astype(np.uint8), "L")
del rows
with torch.inference_mode():  # warm-up at the network size: its kernels and buffers
    model(torch.zeros(1, 1, *model_input_size(height, width, size, True, 32)))
base = status("VmRSS")
with open("/proc/self/clear_refs", "w") as file:
    file.write("5")  # the peak (VmHWM) from now on
out = colorize(model, photo, size=size, keep_aspect=True)
peak = status("VmHWM")
box = (2900, 2200, 3100, 2300)  # nothing lost: the photo's lightness, in Lab units
L_in, L_out = (rgb_to_L_ab(to_rgb_tensor(image.crop(box)))[0] for image in (photo, out))
result = {"size": out.size, "extra": peak - base, "strip_pixels": STRIP_PIXELS}
print(json.dumps(result | {"L_diff": 50 * float((L_in - L_out).abs().max())}))
"""


@pytest.mark.slow
def test_a_large_photo_colorizes_in_bounded_memory():
    # a 6000x4500 photo (27 M pixels), DDColor ("micro" preset), keep_aspect, in a fresh process
    # whose peak resident set above the one before the call is measured (Linux /proc)
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
    except OSError:
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak resident set")
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["size"] == [6000, 4500] and result["L_diff"] < 0.5
    # What the call may add at its peak, beside the photo and the model already there:
    # * the photo's float32 L: 4 bytes a pixel;
    # * the 8-bit RGB output: PIL keeps an RGB pixel in 4 bytes;
    # * one strip's work (its upsampled ab, the gamut fit's Lab -> sRGB conversions and its
    #   bisection, the 8-bit conversion): under 100 float32 numbers a strip pixel (measured:
    #   45 to 70), 400 bytes times STRIP_PIXELS;
    # * 64 MiB for allocator slack and code first run during the call.
    # Here 216 MB + 210 MB + 67 MB = 0.49 GB; the original algorithm (every step on the whole
    # photo at once) needs about 120 bytes a pixel: 3.2 GB.
    pixels = 6000 * 4500
    assert result["strip_pixels"] <= pixels // 16  # many strips, or the bound says nothing
    bound = 8 * pixels + 400 * result["strip_pixels"] + 64 * 2**20
    assert result["extra"] <= bound, f"{result['extra'] / 2**20:.0f} > {bound / 2**20:.0f} MiB"
