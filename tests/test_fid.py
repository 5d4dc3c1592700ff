"""colorlib.evaluation.fid: the Frechet distance against closed forms and scipy, FID offline."""

import numpy as np
import pytest
import scipy.linalg
import torch
from torchvision.models import Inception_V3_Weights, inception_v3

from colorlib.evaluation import fid
from colorlib.models.pretrained import hub_cache_path

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


# --- FID pipeline -----------------------------------------------------------------------------


def test_fid_offline_returns_none_with_a_message(capsys):
    assert fid.fid(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)) is None
    assert "FID is not computed" in capsys.readouterr().err


@pytest.mark.slow
def test_fid_with_seeded_hub_cache_uses_the_cached_inception(capsys):
    torch.manual_seed(0)
    state = inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    path = hub_cache_path(Inception_V3_Weights.IMAGENET1K_V1.url)
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    extractor = fid.load_inception("cpu")
    assert "hub cache" in capsys.readouterr().err
    assert torch.equal(extractor.net.Conv2d_1a_3x3.conv.weight, state["Conv2d_1a_3x3.conv.weight"])
    extractor.train()  # must stay in eval mode
    pred, real = _rgb(2, 3, 20, 20, dtype=torch.float32), _rgb(2, 3, 24, 24, seed=1).float()
    with torch.no_grad():
        f_pred, f_real = extractor(pred), extractor(real)
    assert f_pred.shape == (2, 2048)
    value = fid.fid([pred[0], pred[1:]], real)  # a sequence and a tensor; loads from the cache
    assert value == pytest.approx(fid.fid_from_features(f_pred, f_real), rel=1e-4)
    assert value > 0


# --- accumulation and folders -----------------------------------------------------------------
