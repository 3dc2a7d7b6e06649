"""Does the model copy its training brains? A nearest-neighbour memorisation audit.

For each query volume (a synthetic sample, or a held-out real subject as the reference distribution)
its nearest training subject by normalised cross-correlation (NCC) inside a brain mask:
NCC(a, b) = <a - mean a, b - mean b> / (|a - mean a| |b - mean b|), 1 for a copy up to brightness and
contrast. Held-out real subjects show how close an *independent* brain comes to the training set; a
sample closer to a training subject than any held-out subject is (``threshold``) is flagged as a
possible copy. The search runs over blocks of queries and chunks of the training set, so memory is
bounded by (query block + chunk) x voxels, whatever the numbers of samples and training subjects
(``benchmarks/bench_privacy.py`` measures it at the paper's size).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch


def unit_rows(volumes: np.ndarray, mask: np.ndarray | None = None) -> torch.Tensor:
    """(N, V) zero-mean, unit-norm rows of the volumes' voxels (inside ``mask`` if given), float32.
    One copy of the input, normalised in place (memory: this runs on blocks of paper-size volumes)."""
    x = torch.tensor(np.asarray(volumes), dtype=torch.float32).flatten(1)
    if mask is not None:
        x = x[:, torch.as_tensor(np.asarray(mask).ravel(), dtype=torch.bool)]
    x.sub_(x.mean(1, keepdim=True))
    return x.div_(x.norm(dim=1, keepdim=True).clamp(min=1e-12))


def nearest_neighbours(queries, references, mask: np.ndarray | None = None, query_batch: int = 64
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(index, NCC) of each query's nearest reference.

    ``queries``: anything sliceable into arrays (N, ...), e.g. an array or a memory-mapped file.
    ``references``: an array (M, ...), or a function returning an iterable of chunks (m_i, ...) read
    one at a time (e.g. from files), indexed in order; it is called once per block of ``query_batch``
    queries. Memory is bounded by (query_batch + chunk) x voxels, whatever N and M are."""
    read = (lambda: [references]) if isinstance(references, np.ndarray) else references
    args, bests = [], []
    for start in range(0, len(queries), query_batch):
        q = unit_rows(np.asarray(queries[start:start + query_batch]), mask)
        best = torch.full((len(q),), -2.0)
        arg = torch.zeros(len(q), dtype=torch.long)
        offset = 0
        for chunk in read():
            r = unit_rows(chunk, mask)
            value, index = (q @ r.T).max(1)
            better = value > best
            best[better], arg[better] = value[better], index[better] + offset
            offset += len(r)
        args.append(arg.numpy())
        bests.append(best.numpy())
    return np.concatenate(args), np.concatenate(bests)


def audit(samples, train, test, mask: np.ndarray | None = None, query_batch: int = 64) -> dict:
    """Nearest training subject of every sample and every held-out real subject; samples closer to a
    training subject than the closest held-out subject is are flagged. ``train`` is an array or a
    function returning chunks (see ``nearest_neighbours``)."""
    s_idx, s_ncc = nearest_neighbours(samples, train, mask, query_batch)
    t_idx, t_ncc = nearest_neighbours(test, train, mask, query_batch)
    threshold = float(t_ncc.max())
    flagged = s_ncc > threshold
    return {"sample_nn": s_idx, "sample_ncc": s_ncc, "test_nn": t_idx, "test_ncc": t_ncc, "threshold": threshold,
            "flagged": flagged, "flag_rate": float(flagged.mean()), "n_samples": int(len(s_ncc)),
            "n_test": int(len(t_ncc))}


def most_common_nearest(nearest: np.ndarray) -> tuple[int, int]:
    """(training index, how many queries have it as nearest neighbour) for the most common one; (-1, 0)
    for none. Samples that copy one subject pile up on it; samples that are merely typical (near the
    population mean, so near many subjects) spread over several."""
    if len(nearest) == 0:
        return -1, 0
    values, counts = np.unique(np.asarray(nearest), return_counts=True)
    return int(values[counts.argmax()]), int(counts.max())


def head_mask(train: np.ndarray, level: float = 0.1) -> np.ndarray:
    """Voxels inside the head on average over the training set: NCC is taken there, so the empty
    background (identical in every volume) does not make every pair look alike."""
    return np.asarray(train).mean(0) > level


def privacy_record(found: dict, control: dict, matched: dict, k_control: int, train_ids) -> dict:
    """Chapter 8's numbers from three audits: the samples against real test subjects (``found``), the
    over-fitted control's samples (``control``; it memorised training subjects 0..k_control-1) and the
    samples against the blur-matched reference (``matched``: test subjects through the autoencoder).
    Also whether the flagged samples pile up on one training subject (a copy) or spread (typical
    samples), with the real test subjects' most shared nearest subject as the yardstick."""
    train_ids = list(train_ids)
    j_flag, k_flag = most_common_nearest(found["sample_nn"][found["flagged"]])
    _, k_test = most_common_nearest(found["test_nn"])
    return {
        "threshold": found["threshold"], "flag_rate": found["flag_rate"], "n_samples": found["n_samples"],
        "control_flag_rate": control["flag_rate"],
        "control_copies_of_the_few": float(np.isin(control["sample_nn"], np.arange(k_control)).mean()),
        "n_control": control["n_samples"], "sample_ncc": found["sample_ncc"].tolist(),
        "test_ncc": found["test_ncc"].tolist(), "control_ncc": control["sample_ncc"].tolist(),
        "threshold_reconstructions": matched["threshold"], "flag_rate_reconstructions": matched["flag_rate"],
        "control_flag_rate_reconstructions": float((control["sample_ncc"] > matched["threshold"]).mean()),
        "recon_test_ncc": matched["test_ncc"].tolist(),
        "flagged_most_common_nearest": train_ids[j_flag] if k_flag else None,
        "flagged_most_common_nearest_count": k_flag,
        "flagged_distinct_nearest": len(set(found["sample_nn"][found["flagged"]].tolist())),
        "test_most_common_nearest_count": k_test,
    }


def privacy_summary(record: dict, n_test: int, weights: str, control_weights: str) -> pd.DataFrame:
    """The chapter's table: flag rate, median and max nearest NCC of each set."""
    def row(name, ncc, flagged, n):
        return {"set": name, "n": n, "flagged": flagged, "median NCC": float(np.median(ncc)),
                "max NCC": float(np.max(ncc))}
    return pd.DataFrame([
        row(f"samples ({weights})", record["sample_ncc"], record["flag_rate"], record["n_samples"]),
        row(f"over-fitted control ({control_weights})", record["control_ncc"], record["control_flag_rate"],
            record["n_control"]),
        row("real test subjects (reference)", record["test_ncc"], 0.0, n_test),
        row("test subjects through the autoencoder (blur-matched reference)", record["recon_test_ncc"], 0.0, n_test),
    ]).set_index("set")
