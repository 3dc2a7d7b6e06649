#!/usr/bin/env bash
# One device call (benchmarks/results/registration_correlation_cohort_2026-11-27.md, the runbook): every demo
# network retrained from a packed training split, and the notebooks' evaluation paths checked on the GPU.
#   carry: .gpu_corr (gpu_demo_retrain.py pack) and .whl (monai, monai-generative, nibabel: the image lacks them)
#   BUDGET: seconds of training (default 500); the whole call takes ~40 s more
# Beside the training, check_gpu_paths.py compares each evaluation path on the GPU with the CPU (shipped
# networks). What comes back ($OUT): train.log, gpu_paths.json/.log, and the variants' tars as one tar split
# into 15 MB parts (the device returns at most 8 files of 16 MiB): cat all.part.* | tar x
set -u -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:. || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
OMP_NUM_THREADS=4 PYTHONUNBUFFERED=1 timeout 360 python3 benchmarks/check_gpu_paths.py --out "$OUT/gpu_paths.json" \
    > "$OUT/gpu_paths.log" 2>&1 &
check=$!
LDM_SNAPSHOT_EVERY=2000 PYTHONUNBUFFERED=1 python3 benchmarks/gpu_demo_retrain.py train --data .gpu_corr \
    --out /tmp/retrain_out --work /tmp/retrain_work --budget "${BUDGET:-500}" \
    --variants long,brain_age,lsgan,vaegan 2>&1 | tee "$OUT/train.log"
wait $check
(cd /tmp/retrain_out && tar cf - ./*.tar | split -b 15M - "$OUT/all.part.")
ls -la "$OUT"
