"""The memorisation audit finds a planted copy, in chunks, and flags only what is closer than real."""

import numpy as np
from scipy.ndimage import gaussian_filter

from ldm.privacy import audit, nearest_neighbours, unit_rows


def _brains(n, seed, shape=(12, 14, 12)):
    rng = np.random.default_rng(seed)
    return np.stack([gaussian_filter(rng.normal(size=shape), 1.5) for _ in range(n)]).astype(np.float32)


def test_planted_duplicate_is_found_in_chunks():
    train = _brains(30, 0)
    samples = _brains(10, 1)
    rng = np.random.default_rng(2)
    samples[6] = 1.7 * train[17] + 0.2 + 0.01 * rng.normal(size=train[17].shape)  # a copy, rescaled + noise
    whole = nearest_neighbours(samples, train)
    chunked = nearest_neighbours(samples, lambda: (train[i:i + 7] for i in range(0, 30, 7)), query_batch=3)
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_allclose(whole[1], chunked[1], atol=1e-6)
    assert whole[0][6] == 17 and whole[1][6] > 0.99
    result = audit(samples, train, _brains(8, 3))
    assert result["flagged"].tolist() == [i == 6 for i in range(10)], "only the copy is closer than real"
    assert result["flag_rate"] == 0.1


def test_ncc_ignores_brightness_and_contrast_and_respects_the_mask():
    x = _brains(2, 4)
    rows = unit_rows(np.stack([x[0], 3 * x[0] + 1]))
    assert float(rows[0] @ rows[1]) > 0.99999
    mask = np.zeros(x.shape[1:], bool)
    mask[2:8, 2:9, 2:8] = True
    y = x[1].copy()
    y[mask] = x[0][mask]  # identical inside the mask only
    _, ncc = nearest_neighbours(y[None], x[:1], mask)
    assert ncc[0] > 0.99999
