#!/usr/bin/env bash
# The one device call of 2026-11-27 that trained the shipped demo networks (README.md beside this file;
# the runbook: benchmarks/results/registration_correlation_cohort_2026-11-27.md): every demo network
# retrained from a packed training split. Run from the repository root:
#   BUDGET=470 bash experiments/2026-11-27-demo-retrain/gpu_retrain_call.sh
#   carry: .gpu_corr (gpu_demo_retrain.py pack) and .whl (monai, monai-generative, nibabel: the image lacks them)
#   BUDGET: seconds of training (default 500); the whole call takes ~40 s more
# What comes back ($OUT): gpu.txt, train.log and the variants' tars as one tar split into 15 MB parts (the
# device returns at most 8 files of 16 MiB): cat all.part.* | tar x
#
# As run on 2026-11-27 the call also checked the notebooks' evaluation paths on the GPU against the CPU
# (shipped networks), beside the training, with benchmarks/check_gpu_paths.py; its record is
# benchmarks/results/gpu_paths.json. That script is gone (git show 77a2dae:benchmarks/check_gpu_paths.py);
# the same comparisons are now tests/test_gpu_paths.py (run when a GPU is present). Its lines here were:
#   OMP_NUM_THREADS=4 PYTHONUNBUFFERED=1 timeout 360 python3 benchmarks/check_gpu_paths.py --out "$OUT/gpu_paths.json" \
#       > "$OUT/gpu_paths.log" 2>&1 &
#   check=$!
#   ... (the training below) ...
#   wait $check
set -u -o pipefail
here=experiments/2026-11-27-demo-retrain
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:. || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
LDM_SNAPSHOT_EVERY=2000 PYTHONUNBUFFERED=1 python3 "$here/gpu_demo_retrain.py" train --data .gpu_corr \
    --out /tmp/retrain_out --work /tmp/retrain_work --budget "${BUDGET:-500}" \
    --variants long,brain_age,lsgan,vaegan 2>&1 | tee "$OUT/train.log"
(cd /tmp/retrain_out && tar cf - ./*.tar | split -b 15M - "$OUT/all.part.")
ls -la "$OUT"
