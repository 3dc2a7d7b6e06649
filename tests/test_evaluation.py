"""The verdicts and numbers that chapters 4, 6 and 8 print, computed in ldm and checked here on inputs whose
answer is known: the claims and their thresholds, interval verdicts, the extrapolation slopes, the privacy
record; and the run folder and the prediction targets they rest on."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from ldm.evaluation.claims import TABLE1_THRESHOLDS, claims_record, interval_verdict, table1_claims
from ldm.evaluation.conditioning import extrapolation_slopes
from ldm.evaluation.privacy import privacy_record, privacy_summary
from ldm.models.schedule import add_noise, alphas_cumprod, eps_from_prediction, make_betas, prediction_target
from ldm.run import Run

FAST = "LDM + DPM-Solver++ 20"


def _row(fid, ms_ssim):
    return {"fid": fid, "ms_ssim": ms_ssim}


@pytest.fixture()
def record():
    """A table1.json record in which every claim holds, each by a clear margin."""
    return {"rows": {"LDM + DDIM": _row(0.010, 0.76), "Real images": _row(0.001, 0.74), FAST: _row(0.011, 0.77),
                     "LSGAN": _row(0.020, 0.99), "VAE-GAN": _row(0.030, 0.95), "LDM": _row(0.012, 0.75)},
            "seconds_per_sample": {"LDM": 20.0, "LDM + DDIM": 1.0},
            "fid_on_ddpm_seeds": {"n": 8, "LDM": 0.020, "LDM + DDIM": 0.021},
            "plausible_fraction": {"LDM + DDIM": 1.0}}


def test_every_claim_holds_on_a_record_that_meets_every_threshold(record):
    claims = table1_claims(record, FAST)
    assert len(claims) == 7 and all(c.holds for c in claims), [c for c in claims if not c.holds]
    stored = claims_record(claims)
    assert stored["thresholds"] == TABLE1_THRESHOLDS and len(stored["claims"]) == 7
    assert all({"claim", "holds", "measured", "threshold"} <= set(c) for c in stored["claims"])


@pytest.mark.parametrize("index, change", [
    (0, lambda r: r["rows"]["Real images"].update(ms_ssim=0.76 - 0.0501)),  # diversity just past 0.05
    (1, lambda r: r["fid_on_ddpm_seeds"].update({"LDM + DDIM": 0.020 * 1.2501})),  # DDIM FID 25.01% above DDPM
    (2, lambda r: r["seconds_per_sample"].update(LDM=10.0)),  # exactly 10x is not "more than 10x"
    (3, lambda r: r["plausible_fraction"].update({"LDM + DDIM": 0.949})),
    (4, lambda r: r["rows"]["LSGAN"].update(fid=0.010)),  # a tie does not beat
    (5, lambda r: r["rows"][FAST].update(ms_ssim=0.76 + 0.0201)),
    (5, lambda r: r["rows"][FAST].update(fid=0.010 * 1.2501)),
    (6, lambda r: r["rows"]["VAE-GAN"].update(ms_ssim=0.75)),
])
def test_each_claim_fails_just_past_its_threshold(record, index, change):
    changed = copy.deepcopy(record)
    change(changed)
    verdicts = [c.holds for c in table1_claims(changed, FAST)]
    assert verdicts == [i != index for i in range(7)]


def test_claims_take_their_thresholds_from_the_table(record):
    strict = {**TABLE1_THRESHOLDS, "ms_ssim_vs_real": 0.01}
    assert not table1_claims(record, FAST, strict)[0].holds
    assert "0.01" in table1_claims(record, FAST, strict)[0].threshold


@pytest.mark.parametrize("ci, verdict", [
    ((-0.3, -0.1), "LDM lower"), ((0.1, 0.3), "GAN lower"), ((-0.1, 0.1), "not resolved at this n"),
    ((0.0, 0.2), "not resolved at this n")])
def test_interval_verdict_needs_an_interval_that_excludes_zero(ci, verdict):
    assert interval_verdict(ci, "LDM", "GAN") == verdict


def test_extrapolation_slopes_recover_known_lines():
    inputs = [-0.5, 0.0, 0.5, 1.0, 1.5, 1.9]
    # 40 + 100 x inside [0, 1]; from 1 on the volume grows by only 20 per unit (saturation); below 0 anything
    measured = [5.0, 40.0, 90.0, 140.0, 150.0, 158.0]
    table = pd.DataFrame([{"seed": s, "input": x, "measured_ml": m + s}
                          for s in (0, 1) for x, m in zip(inputs, measured)])
    slopes = extrapolation_slopes(table)
    assert slopes["slope_inside_ml_per_unit"] == pytest.approx(100.0)
    assert slopes["slope_above_1_ml_per_unit"] == pytest.approx(20.0)


def _audit(nn, ncc, test_nn, test_ncc):
    ncc, test_ncc = np.asarray(ncc, float), np.asarray(test_ncc, float)
    threshold = float(test_ncc.max())
    return {"sample_nn": np.asarray(nn), "sample_ncc": ncc, "test_nn": np.asarray(test_nn), "test_ncc": test_ncc,
            "threshold": threshold, "flagged": ncc > threshold, "flag_rate": float((ncc > threshold).mean()),
            "n_samples": len(ncc), "n_test": len(test_ncc)}


def test_privacy_record_counts_flags_copies_and_where_flags_pile_up():
    ids = ["sub-a", "sub-b", "sub-c", "sub-d"]
    found = _audit([3, 3, 1, 3, 0], [0.95, 0.96, 0.80, 0.97, 0.70], [0, 1, 2], [0.85, 0.90, 0.88])
    control = _audit([0, 1, 0, 2], [0.99, 0.99, 0.98, 0.70], [0, 1, 2], [0.85, 0.90, 0.88])
    matched = _audit([3, 3, 1, 3, 0], [0.95, 0.96, 0.80, 0.97, 0.70], [0, 1, 2], [0.93, 0.94, 0.95])
    r = privacy_record(found, control, matched, k_control=2, train_ids=ids)
    assert r["flag_rate"] == pytest.approx(3 / 5) and r["control_flag_rate"] == pytest.approx(3 / 4)
    assert r["control_copies_of_the_few"] == pytest.approx(3 / 4)  # nearest to subject 0 or 1
    assert r["flagged_most_common_nearest"] == "sub-d" and r["flagged_most_common_nearest_count"] == 3
    assert r["flagged_distinct_nearest"] == 1 and r["test_most_common_nearest_count"] == 1
    assert r["threshold_reconstructions"] == pytest.approx(0.95)
    assert r["flag_rate_reconstructions"] == pytest.approx(2 / 5)
    assert r["control_flag_rate_reconstructions"] == pytest.approx(3 / 4)
    table = privacy_summary(r, 3, "w", "c")
    assert table["max NCC"].tolist() == pytest.approx([0.97, 0.99, 0.90, 0.95])


def test_privacy_record_with_nothing_flagged_names_no_subject():
    found = _audit([0, 1], [0.5, 0.6], [0, 1], [0.9, 0.8])
    r = privacy_record(found, found, found, 1, ["sub-a", "sub-b"])
    assert r["flagged_most_common_nearest"] is None and r["flagged_most_common_nearest_count"] == 0


def test_run_folder_layout_and_results_round_trip(tmp_path, smoke):
    run = Run.of(smoke, tmp_path / "r")
    assert Run.of(smoke).root.as_posix() == "runs/smoke"
    assert [run.cohort, run.preprocessed, run.models, run.results, run.samples] == [
        tmp_path / "r" / d for d in ("cohort", "preprocessed", "models", "results", "samples")]
    assert run.read_results("table1") == {}
    path = run.write_results("table1", {"a": 1.5, "b": [1, 2]})
    assert path == run.results / "table1.json" and run.read_results("table1") == {"a": 1.5, "b": [1, 2]}


def test_run_split_reads_the_manifest(tmp_path, smoke, preprocessed):
    run = Run(tmp_path)
    (tmp_path / "preprocessed").symlink_to(preprocessed[0], target_is_directory=True)
    manifest = run.manifest()
    for split in ("train", "validation", "test"):
        rows = run.split(split)
        assert set(rows["split"]) <= {split} and len(rows) == (manifest["split"] == split).sum()


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_prediction_target_and_its_inverse_agree(prediction_type):
    """What training regresses (``prediction_target``) converted back by what sampling uses
    (``eps_from_prediction``) is the noise that made x_t."""
    g = torch.Generator().manual_seed(0)
    abar = alphas_cumprod(make_betas(1000, "scaled_linear_beta", 0.0015, 0.0205))
    x0, eps = torch.randn(4, 3, 5, 6, 5, generator=g), torch.randn(4, 3, 5, 6, 5, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    x_t = add_noise(x0, eps, t, abar)
    target = prediction_target(x0, eps, t, abar, prediction_type)
    a = abar[t].float().view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(eps_from_prediction(target, x_t, a, prediction_type), eps, atol=2e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="unknown prediction_type"):
        prediction_target(x0, eps, t, abar, "score")
