"""Table 1's metrics against closed forms, invariances and constructed volumes."""

import warnings

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter, sobel

from ldm.config import load_profile
from ldm.evaluation.metrics import (
    _fid_low_rank,
    _gaussian_filter,
    feature_extractor,
    fid_difference_interval,
    fid_from_features,
    four_g_r_ssim,
    frechet_distance,
    ms_ssim,
    pair_diversity,
    random_pairs,
    regions,
    sobel_magnitude,
)

CFG = load_profile("demo").metrics  # kernel 5, three scales: the demo's 40 x 56 x 40 volumes


def brain_like(seed: int, shape=(40, 56, 40)) -> np.ndarray:
    """A smooth blob with inner structure: edges, smooth and textured parts, like a head."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    r = np.sqrt(zz**2 + yy**2 + xx**2)
    vol = (r < 0.8) * 0.6 + (r < 0.35) * 0.3 + gaussian_filter(rng.normal(0, 0.15, shape), 1.5) * (r < 0.8)
    return np.clip(vol, 0, 1).astype(np.float32)


def test_frechet_distance_is_the_closed_form_for_known_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    d1, d2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 1.0])  # diagonal covariances
    expected = ((mu1 - mu2) ** 2).sum() + (d1 + d2 - 2 * np.sqrt(d1 * d2)).sum()
    assert frechet_distance(mu1, np.diag(d1), mu2, np.diag(d2)) == pytest.approx(expected, rel=1e-9)
    # and a full covariance against a rotation of itself: the same Gaussian up to a mean shift
    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert frechet_distance(np.zeros(2), a, np.ones(2), a) == pytest.approx(2.0, abs=1e-8)


def test_low_rank_fid_equals_the_sqrtm_form():
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(200, 40)) @ rng.normal(size=(40, 40))
    for n in (12, 80):  # fewer samples than features (the demo: 80 vs 512) and more
        a = rng.normal(0.3, 1.5, size=(n, 40))
        got = _fid_low_rank(a, ref.mean(0), np.cov(ref, rowvar=False))
        assert got == pytest.approx(fid_from_features(a, ref), rel=1e-6)


def test_fid_with_dead_features_is_exact_and_quiet():
    """Features that are zero for every volume (a ReLU channel of the random-init fallback network that
    never fires) make both covariances singular: scipy's sqrtm then warned "Matrix is singular" into the
    book, although the value equals the exact low-rank form."""
    rng = np.random.default_rng(5)
    ref = rng.normal(size=(200, 40))
    ref[:, :5] = 0
    a = rng.normal(0.3, 1.5, size=(80, 40))
    a[:, :5] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = fid_from_features(a, ref)
    assert got == pytest.approx(_fid_low_rank(a, ref.mean(0), np.cov(ref, rowvar=False)), rel=1e-6)


def test_fid_difference_interval_separates_a_worse_model_and_not_a_twin():
    rng = np.random.default_rng(5)
    ref = rng.normal(size=(300, 16))
    twin_a, twin_b = rng.normal(size=(80, 16)), rng.normal(size=(80, 16))
    worse = rng.normal(0.4, 1.3, size=(80, 16))
    same = fid_difference_interval(twin_a, twin_b, ref, n_boot=300)
    assert same["ci95"][0] < 0 < same["ci95"][1]
    apart = fid_difference_interval(worse, twin_a, ref, n_boot=300)
    assert apart["difference"] > 0 and apart["ci95"][0] > 0
    assert apart["difference"] == pytest.approx(fid_from_features(worse, ref) - fid_from_features(twin_a, ref))


def test_fid_is_zero_for_a_set_against_itself_and_grows_with_noise():
    rng = np.random.default_rng(0)
    vols = np.stack([brain_like(i) for i in range(12)])
    ext = feature_extractor("")  # the fallback: the name says so
    assert "FALLBACK" in ext.name and not ext.pretrained
    real = ext(vols)
    assert fid_from_features(real, real) == pytest.approx(0.0, abs=1e-6)
    fids = [fid_from_features(real, ext(np.clip(vols + rng.normal(0, s, vols.shape), 0, 1).astype(np.float32)))
            for s in (0.02, 0.1, 0.3)]
    assert 0 < fids[0] < fids[1] < fids[2], fids


def test_ms_ssim_is_one_for_identical_symmetric_and_falls_with_noise():
    rng = np.random.default_rng(1)
    x = brain_like(0)
    assert ms_ssim(x, x, CFG)[0] == pytest.approx(1.0, abs=1e-5)
    y = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1).astype(np.float32)
    assert ms_ssim(x, y, CFG)[0] == pytest.approx(ms_ssim(y, x, CFG)[0], abs=1e-6)
    scores = [ms_ssim(x, np.clip(x + rng.normal(0, s, x.shape), 0, 1).astype(np.float32), CFG)[0]
              for s in (0.01, 0.05, 0.2, 0.5)]
    assert all(a > b for a, b in zip(scores, scores[1:])), scores


def test_four_g_r_ssim_is_one_for_identical_and_falls_with_noise_and_blur():
    rng = np.random.default_rng(2)
    x = brain_like(0)
    assert four_g_r_ssim(x, x, CFG)[0] == pytest.approx(1.0, abs=1e-6)
    noisy = [four_g_r_ssim(x, np.clip(x + rng.normal(0, s, x.shape), 0, 1).astype(np.float32), CFG)[0]
             for s in (0.01, 0.05, 0.2, 0.5)]
    assert all(a > b for a, b in zip(noisy, noisy[1:])), noisy
    blurred = [four_g_r_ssim(x, gaussian_filter(x, s).astype(np.float32), CFG)[0] for s in (0.5, 1.0, 2.0)]
    assert all(a > b for a, b in zip(blurred, blurred[1:])), blurred


def test_gradient_and_smoothing_filters_match_scipy():
    """4-G-R-SSIM's filters (shifted sums, not convolutions) against scipy.ndimage with the same
    replicate ("nearest") borders, on a volume whose sides differ in length."""
    x = np.random.default_rng(3).random((2, 9, 12, 7)).astype(np.float32)
    t = torch.from_numpy(x)[:, None]
    want = np.stack([np.sqrt(sum(sobel(v, axis=a, mode="nearest").astype(np.float64) ** 2 for a in range(3))) / 16
                     for v in x])  # per volume: scipy smooths along every other axis, the batch one too
    np.testing.assert_allclose(sobel_magnitude(t)[:, 0].numpy(), want, atol=1e-5)
    for size, sigma in ((5, 1.0), (7, 1.5), (3, 0.5)):
        want = gaussian_filter(x, (0, sigma, sigma, sigma), truncate=(size // 2) / sigma, mode="nearest")
        np.testing.assert_allclose(_gaussian_filter(t, size, sigma)[:, 0].numpy(), want, atol=1e-6)


def test_region_partition_on_a_constructed_volume():
    """A cube with sharp edges in the reference; in the distorted volume its left half is erased (so the
    edges there are changed edges) and the rest kept (preserved edges); far away both are flat (smooth)."""
    ref = torch.zeros(1, 1, 24, 24, 24)
    ref[:, :, 6:18, 6:18, 6:18] = 1.0
    dist = ref.clone()
    dist[..., :12] = 0.0
    g_ref, g_dist = sobel_magnitude(ref), sobel_magnitude(dist)
    parts = regions(g_ref, g_dist)
    total = sum(m.float() for m in parts.values())
    assert torch.equal(total, torch.ones_like(total)), "the four regions partition the volume"
    edge = g_ref > 0.12 * g_ref.max()
    assert parts["changed_edge"][..., :10][edge[..., :10]].all(), "erased edges are changed edges"
    assert parts["preserved_edge"][..., 14:][edge[..., 14:]].all(), "kept edges are preserved"
    assert not parts["preserved_edge"][..., :10].any()
    assert parts["changed_edge"][:, :, 8:16, 8:16, 11:13].all(), "the cut is a new edge: changed"
    assert parts["smooth"][..., :3, :3, :3].all() and parts["smooth"][:, :, 10:14, 10:14, 15].all()
    assert not parts["smooth"][edge].any()


def test_random_pairs_are_distinct_and_cover():
    pairs = random_pairs(10, 45, seed=0)
    assert (pairs[:, 0] != pairs[:, 1]).all()
    assert len({tuple(sorted(p)) for p in pairs}) == 45, "every pair exactly once when all are asked for"


def test_diversity_of_copies_is_one_and_of_distinct_volumes_lower():
    same = np.stack([brain_like(0)] * 5)
    assert pair_diversity(same, ms_ssim, 6, cfg=CFG)["mean"] == pytest.approx(1.0, abs=1e-5)
    different = np.stack([brain_like(i) for i in range(5)])
    d = pair_diversity(different, ms_ssim, 6, cfg=CFG)
    assert d["mean"] < 0.999 and d["n_pairs"] == 6 and d["ci95"] > 0


class Identity(torch.nn.Module):
    """A lossless autoencoder (the latent is the image)."""

    def encode(self, x):
        return x, torch.zeros_like(x)

    def decode(self, z):
        return z


def test_diagnostic_rows_of_a_perfect_autoencoder_equal_the_real_row():
    """Chapter 4's diagnostic rows: a lossless autoencoder reconstructs the real set exactly, so its row
    equals the real set's; the blurred row loses texture, so its pairs look more alike."""
    from ldm.evaluation.diagnostics import diagnostic_sets, sample_set_metrics
    from ldm.evaluation.metrics import feature_extractor

    cfg = load_profile("smoke").metrics
    rng = np.random.default_rng(0)
    real = np.clip(gaussian_filter(rng.random((10, 24, 28, 24)), (0, 1, 1, 1)) * 2 - 0.5
                   + 0.1 * rng.standard_normal((10, 24, 28, 24)), 0, 1).astype(np.float32)
    extractor = feature_extractor("")
    reference = extractor(rng.random((12, 24, 28, 24)).astype(np.float32))
    rows = {k: sample_set_metrics(v, reference, extractor, cfg)
            for k, v in diagnostic_sets(Identity(), real, blur_voxels=1.0).items()}
    exact = sample_set_metrics(real, reference, extractor, cfg)
    recon = rows["Autoencoder reconstructions"]
    assert recon["fid"] == pytest.approx(exact["fid"], rel=1e-6)
    assert recon["ms_ssim"] == pytest.approx(exact["ms_ssim"], rel=1e-6)
    blurred = rows["Real images blurred (sd 1 voxel)"]
    assert blurred["ms_ssim"] > exact["ms_ssim"] + 0.05


def test_noise_sd_is_the_finest_haar_band_and_recovers_white_noise():
    """``noise_sd`` is MAD / 0.6745 of the finest all-axes Haar detail (here written as the signed sum of
    each 2x2x2 block), and recovers the sd of white noise added to a smooth phantom."""
    from ldm.evaluation.diagnostics import noise_sd

    rng = np.random.default_rng(0)
    vol = brain_like(0) + 0.02 * rng.standard_normal((40, 56, 40))
    blocks = vol.reshape(20, 2, 28, 2, 20, 2)
    sign = np.array([1, -1])
    detail = np.einsum("aibjck,i,j,k->abc", blocks, sign, sign, sign) / 2 ** 1.5
    inside = blocks[:, 0, :, 0, :, 0] > 0.1
    assert noise_sd(vol[None]) == pytest.approx(np.median(np.abs(detail[inside])) / 0.6745, rel=1e-9)
    for sd in (0.01, 0.03):
        noisy = np.stack([brain_like(i) for i in range(3)]) + sd * rng.standard_normal((3, 40, 56, 40))
        assert noise_sd(noisy) == pytest.approx(sd, rel=0.15)
    assert noise_sd(brain_like(1)[None]) < 0.002  # the phantom alone: almost nothing in that band


def test_diagnostic_sets_with_noise_add_the_same_noise_to_each_set():
    from ldm.evaluation.diagnostics import add_white_noise, diagnostic_sets

    real = np.stack([brain_like(i, (24, 28, 24)) for i in range(6)])
    sets = diagnostic_sets(Identity(), real, noise=0.03, samples={"LDM": real[::-1].copy()})
    assert set(sets) == {"Autoencoder reconstructions", "Real images blurred (sd 0.5 voxel)",
                         "Real images + white noise (sd 0.030)", "Autoencoder reconstructions + white noise (sd 0.030)",
                         "LDM + white noise (sd 0.030)"}
    noisy = sets["Real images + white noise (sd 0.030)"]
    assert np.array_equal(noisy, add_white_noise(real, 0.03))  # seed 0, and the lossless autoencoder changes nothing
    assert np.array_equal(sets["Autoencoder reconstructions + white noise (sd 0.030)"], noisy)
    assert np.array_equal(sets["LDM + white noise (sd 0.030)"], add_white_noise(real[::-1], 0.03))
    assert noisy.min() >= 0 and noisy.max() <= 1 and noisy.dtype == np.float32
    assert 0.025 < (noisy - real)[(real > 0.1) & (real < 0.9)].std() < 0.035  # clipping aside, sd 0.03
    assert not np.array_equal(noisy, add_white_noise(real, 0.03, seed=1))
