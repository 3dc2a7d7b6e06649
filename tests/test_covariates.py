import numpy as np
import pytest

from ldm.config import load_profile
from ldm.data.covariates import denormalise, normalise, parse_sex

COVS = load_profile("smoke").data.covariates


def test_paper_normalisation():
    c = normalise({"sex": "M", "age": 63.0, "ventricular_volume": 6995.68, "brain_volume": 1793910}, COVS)
    np.testing.assert_allclose(c, [1.0, (63 - 44) / 38, 0.0, 1.0], rtol=1e-6)


def test_round_trip_and_extrapolation_kept():
    vec = np.array([0.0, 1.2, -0.5, 1.9], dtype=np.float32)
    back = normalise(denormalise(vec, COVS), COVS)
    np.testing.assert_allclose(back, vec, atol=1e-6)
    assert denormalise(vec, COVS)["age"] == pytest.approx(44 + 1.2 * 38, rel=1e-6)


@pytest.mark.parametrize("value,expected", [("F", 0.0), ("male", 1.0), (" m ", 1.0), (0, 0.0), (1.0, 1.0)])
def test_sex_codes(value, expected):
    assert parse_sex(value) == expected


@pytest.mark.parametrize("value", ["X", 2, "", None, True])
def test_bad_sex_codes(value):
    with pytest.raises(ValueError, match="sex must be"):
        parse_sex(value)
