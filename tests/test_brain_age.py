"""The brain-age CNN of Fig. 3 (Cole et al. 2017): its architecture, that it learns an age signal, that
training resumes exactly, and that a checkpoint refuses another architecture."""

import numpy as np
import pytest
import torch
from torch import nn

from ldm.checkpoints import load_checkpoint
from ldm.config import load_profile
from ldm.evaluation.conditioning import age_agreement
from ldm.models.brain_age import BrainAgeCNN, build_brain_age, load_brain_age, predict_age
from ldm.training.brain_age import train_brain_age

SMALL = {"brain_age.channels": [4, 8, 16], "brain_age.batch_size": 8, "brain_age.lr": 3e-3}


def test_blocks_follow_cole_et_al():
    paper = load_profile("paper")
    assert paper.brain_age.channels == (8, 16, 32, 64, 128)  # Cole et al.: channels doubling from 8
    with torch.device("meta"):
        net = build_brain_age(paper.brain_age, paper.data.shape)
    kinds = [type(m) for m in net.features]
    block = [nn.Conv3d, nn.ReLU, nn.Conv3d, nn.BatchNorm3d, nn.ReLU, nn.MaxPool3d]
    assert kinds == block * 5
    convs = [m for m in net.features if isinstance(m, nn.Conv3d)]
    assert [c.out_channels for c in convs[1::2]] == [8, 16, 32, 64, 128]
    assert all(c.kernel_size == (3, 3, 3) for c in convs)
    # 160x224x160 halved five times (floored): 5x7x5 voxels of 128 channels into one linear output
    assert net.head.in_features == 128 * 5 * 7 * 5 and net.head.out_features == 1


@pytest.mark.parametrize("name", ["smoke", "demo"])
def test_one_age_per_volume(name):
    p = load_profile(name)
    net = build_brain_age(p.brain_age, p.data.shape).eval()
    assert net(torch.rand(3, 1, *p.data.shape)).shape == (3,)


def _age_coded_volumes(shape, n, seed):
    """Volumes whose 'ventricle' (a central dark box) widens with age, plus noise: an age signal a CNN
    can read, and that survives a left-right flip."""
    rng = np.random.default_rng(seed)
    ages = rng.uniform(45, 80, n)
    vols = 0.6 + 0.05 * rng.standard_normal((n, 1, *shape))
    c = [s // 2 for s in shape]
    for v, age in zip(vols, ages):
        half = int(round(1 + (age - 45) / 35 * 5))
        v[0, c[0] - half:c[0] + half, c[1] - 4:c[1] + 4, c[2] - 3:c[2] + 3] = 0.1
    return torch.tensor(vols, dtype=torch.float32), torch.tensor(ages, dtype=torch.float32)


def test_learns_an_age_signal(tmp_path):
    p = load_profile("smoke", SMALL)
    x, ages = _age_coded_volumes(p.data.shape, 48, seed=0)
    path = train_brain_age(p, x[:32], ages[:32], tmp_path, steps=120, progress=False)
    model = load_brain_age(load_checkpoint(path), p)
    held_out = age_agreement(predict_age(model, x[32:]), ages[32:].numpy())
    baseline = float(np.abs(ages[32:].numpy() - ages[:32].numpy().mean()).mean())  # always the mean age
    assert held_out["r"] > 0.8 and held_out["mae_years"] < 0.5 * baseline, (held_out, baseline)


def test_resume_follows_the_same_trajectory(tmp_path):
    p = load_profile("smoke")
    x, ages = _age_coded_volumes(p.data.shape, 12, seed=1)
    straight = load_checkpoint(train_brain_age(p, x, ages, tmp_path / "a", steps=4, progress=False))
    train_brain_age(p, x, ages, tmp_path / "b", steps=2, progress=False)
    resumed = load_checkpoint(train_brain_age(p, x, ages, tmp_path / "b", steps=4, progress=False))
    assert resumed["step"] == 4 and len(resumed["history"]) == 4
    for k, v in straight["model"].items():
        assert torch.equal(v, resumed["model"][k]), k


def test_checkpoint_refuses_another_architecture(tmp_path):
    p = load_profile("smoke")
    x, ages = _age_coded_volumes(p.data.shape, 8, seed=2)
    train_brain_age(p, x, ages, tmp_path, steps=1, progress=False)
    other = load_profile("smoke", {"brain_age.channels": [4, 8]})
    with pytest.raises(ValueError, match=r"brain_age\.pt: checkpoint was trained with a different brain_age\.channels"):
        train_brain_age(other, x, ages, tmp_path, steps=2, progress=False)


def test_too_many_blocks_for_the_image_is_a_config_error():
    from ldm.config import ConfigError

    with pytest.raises(ConfigError, match="brain_age.channels"):
        load_profile("smoke", {"brain_age.channels": [2, 4, 8, 16, 32]})  # 20 voxels halve to 0


def test_agreement_numbers():
    a = age_agreement(np.array([52.0, 61.0, 70.0]), np.array([50.0, 60.0, 70.0]))
    assert a["mae_years"] == pytest.approx(1.0)
    assert a["r"] == pytest.approx(np.corrcoef([52, 61, 70], [50, 60, 70])[0, 1])
    assert isinstance(BrainAgeCNN((2,), (4, 4, 4)), nn.Module)
