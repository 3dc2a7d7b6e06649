"""The memorisation audit finds a planted copy, in chunks, and flags only what is closer than real."""

import numpy as np
from scipy.ndimage import gaussian_filter

from ldm.evaluation.privacy import audit, most_common_nearest, nearest_neighbours, unit_rows


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


def test_control_left_by_another_autoencoder_is_set_aside_and_retrained(tmp_path):
    """The positive control is cached in the run folder; after the autoencoder changes it is trained again
    on the new latents (the old checkpoint kept beside it), never resumed on them."""
    from types import SimpleNamespace

    import torch

    from ldm.checkpoints import load_checkpoint
    from ldm.config import load_profile
    from ldm.models.networks import build_autoencoder
    from ldm.training.privacy_control import CONTROL_OVERRIDES, train_memoriser

    prof = load_profile("smoke", {**CONTROL_OVERRIDES, "training.checkpoint_every": 2})
    images = np.random.default_rng(0).random((2, *prof.data.shape), dtype=np.float32)
    c = torch.rand(2, 4, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    first = SimpleNamespace(autoencoder=build_autoencoder(prof.autoencoder).eval(), device="cpu")
    train_memoriser(prof, first, images, c, tmp_path, steps=2)
    old = load_checkpoint(tmp_path / "diffusion.pt")
    torch.manual_seed(1)
    second = SimpleNamespace(autoencoder=build_autoencoder(prof.autoencoder).eval(), device="cpu")
    control = train_memoriser(prof, second, images, c, tmp_path, steps=2)
    new = load_checkpoint(tmp_path / "diffusion.pt")
    assert (tmp_path / "diffusion.pt.stale").is_file()
    assert new["step"] == 2 and not torch.equal(new["latent_mean"], old["latent_mean"])
    assert control.autoencoder is second.autoencoder


def test_shipped_control_is_used_only_for_the_latents_it_memorised(tmp_path, capsys):
    """A shipped control (exported: float16 weights, no optimiser) replaces training only when it memorised
    these subjects through this autoencoder for the asked steps; otherwise the control is trained here."""
    from types import SimpleNamespace

    import torch

    from ldm.checkpoints import export_checkpoint
    from ldm.config import load_profile
    from ldm.models.networks import build_autoencoder
    from ldm.training.privacy_control import CONTROL_OVERRIDES, train_memoriser

    prof = load_profile("smoke", {**CONTROL_OVERRIDES, "training.checkpoint_every": 2})
    images = np.random.default_rng(0).random((2, *prof.data.shape), dtype=np.float32)
    c = torch.rand(2, 4, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    pipe = SimpleNamespace(autoencoder=build_autoencoder(prof.autoencoder).eval(), device="cpu")
    train_memoriser(prof, pipe, images, c, tmp_path / "made", steps=2)
    shipped = export_checkpoint(tmp_path / "made" / "diffusion.pt", tmp_path / "privacy_control.pt")

    used = train_memoriser(prof, pipe, images, c, tmp_path / "run1", steps=2, shipped=shipped)
    assert "(shipped)" in used.weights and not (tmp_path / "run1" / "diffusion.pt").exists()

    other_steps = train_memoriser(prof, pipe, images, c, tmp_path / "run2", steps=4, shipped=shipped)
    assert "shipped" not in other_steps.weights and (tmp_path / "run2" / "diffusion.pt").is_file()
    assert "it has 2 steps, the profile asks for 4" in capsys.readouterr().out

    other_subjects = train_memoriser(prof, pipe, images[::-1] * 0.5, c, tmp_path / "run3", steps=2, shipped=shipped)
    assert "shipped" not in other_subjects.weights and (tmp_path / "run3" / "diffusion.pt").is_file()
    assert "memorised other latents" in capsys.readouterr().out


def test_copies_of_one_subject_pile_up_on_it():
    train = _brains(30, 5)
    rng = np.random.default_rng(6)
    copies = np.stack([train[11] + 0.05 * rng.normal(size=train[11].shape) for _ in range(4)]).astype(np.float32)
    nearest, _ = nearest_neighbours(copies, train)
    assert most_common_nearest(nearest) == (11, 4)
    assert most_common_nearest(np.array([3, 1, 3, 2, 3, 1])) == (3, 3)
    assert most_common_nearest(np.array([], dtype=int)) == (-1, 0)
