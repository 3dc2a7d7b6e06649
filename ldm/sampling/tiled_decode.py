"""Decoding a whole 160x224x160 volume in bounded memory, with the same result as the untiled decode.

Why not a sliding window: the decoder is local (convolutions, nearest upsampling, SiLU) except for its
GroupNorms, whose statistics span the whole volume. A sliding window normalises every tile with its own
statistics and leaves seams; on the demo decoder MONAI's ``sliding_window_inference`` with Gaussian
blending differed from the whole decode by 0.17 (mean absolute, images in [0, 1]).

What this does instead:
1. The decoder runs whole up to its last upsampling. That part is small (128x80x112x80 at the paper size);
   the memory of a stock decode is in the last, full-resolution level (~10 GB at 160x224x160).
2. The rest, the *tail*, runs tile by tile. Each tile carries a halo as wide as the tail's receptive
   field, so every voxel of a tile's core sees exactly the inputs it sees in a whole decode.
3. Each GroupNorm of the tail gets its statistics from the whole volume before any tile is normalised
   with them: one streaming pass per GroupNorm (in network order, earlier ones already fixed) runs the
   tiles up to that GroupNorm and sums, per sample and group, its input over the tiles' cores. A final
   pass writes the cores. The price is compute: pass k repeats the tail up to its k-th GroupNorm, and at
   the paper size the first GroupNorm already follows the costliest convolution, so the 6 passes cost
   about 5x the tail (halos add ~1.5x with 20x28x80 tiles; measured 5.4x the whole decode on a CPU).
The result equals the whole decode up to float summation order (tests: 1e-5); the peak memory is the
head's activations plus one tile's (``benchmarks/bench_tiled_decode.py`` measures both).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator

import torch
from monai.networks.blocks import UpSample
from torch import nn


class _StatsReady(Exception):
    """Raised by a collecting GroupNorm: the rest of the tail is not needed in this pass."""


class _Tile:
    """Where a tile sits in the tail's input grid: the slice it reads (core + halo, clipped at the volume's
    border) and its core (the voxels it owns; the cores partition the volume)."""

    def __init__(self, lo: tuple[int, ...], hi: tuple[int, ...], halo: int, shape: tuple[int, ...]):
        self.core_lo, self.core_hi = lo, hi
        self.read_lo = tuple(max(a - halo, 0) for a in lo)
        self.read_hi = tuple(min(b + halo, n) for b, n in zip(hi, shape))

    def read(self) -> tuple[slice, ...]:
        return (slice(None), slice(None), *(slice(a, b) for a, b in zip(self.read_lo, self.read_hi)))

    def core(self, spatial: tuple[int, ...]) -> tuple[slice, ...]:
        """The core inside a tensor computed from this tile, whose grid is ``spatial`` (upsampled or not)."""
        out = [slice(None), slice(None)]
        for a, b, r0, r1, n in zip(self.core_lo, self.core_hi, self.read_lo, self.read_hi, spatial):
            s = n // (r1 - r0)  # the resolution factor of this tensor relative to the tail's input
            out.append(slice((a - r0) * s, (b - r0) * s))
        return tuple(out)


class _WholeVolumeGroupNorm(nn.Module):
    """A GroupNorm whose mean and variance come from the whole volume, not from the tile it sees.

    Collecting (``mean is None``): adds the tile core's per-(sample, group) sum and sum of squares to the
    running totals, then stops the pass. Applying: normalises with the fixed statistics and the original
    affine parameters, exactly as ``nn.GroupNorm`` does (biased variance, eps inside the square root)."""

    def __init__(self, norm: nn.GroupNorm):
        super().__init__()
        self.norm = norm
        self.tile: _Tile | None = None
        self.count = 0
        self.sums: torch.Tensor | None = None
        self.mean: torch.Tensor | None = None
        self.rstd: torch.Tensor | None = None

    def _grouped(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.norm.num_groups, -1, *x.shape[2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            core = self._grouped(x[self.tile.core(tuple(x.shape[2:]))]).flatten(2).double()
            s = torch.stack([core.sum(-1), core.square().sum(-1)])  # (2, B, G)
            self.sums = s if self.sums is None else self.sums + s
            self.count += core.shape[-1]
            raise _StatsReady
        g = self._grouped(x)
        shape = (*self.mean.shape, *([1] * (g.dim() - 2)))
        y = ((g - self.mean.view(shape)) * self.rstd.view(shape)).reshape(x.shape)
        if self.norm.affine:
            affine = (1, -1, *([1] * (x.dim() - 2)))
            y = y * self.norm.weight.view(affine) + self.norm.bias.view(affine)
        return y

    def fix(self) -> None:
        mean = self.sums[0] / self.count
        var = (self.sums[1] / self.count - mean.square()).clamp_min(0)
        self.mean, self.rstd = mean.float(), torch.rsqrt(var + self.norm.eps).float()


def split(decoder: nn.Module) -> tuple[list[nn.Module], list[nn.Module]]:
    """The decoder's blocks before and from its last upsampling (a MONAI ``Decoder``: ``blocks`` run in order)."""
    blocks = list(decoder.blocks)
    ups = [i for i, b in enumerate(blocks) if isinstance(b, UpSample)]
    if not ups:
        raise ValueError("the decoder has no upsampling block: decode it whole")
    return blocks[:ups[-1]], blocks[ups[-1]:]


def tail_halo(tail: list[nn.Module], factor: int = 2) -> int:
    """Halo, in voxels of the tail's input grid, that covers the tail's receptive field: every convolution of
    the tail runs after its first block's ``factor``-fold upsampling, so their radii add up at full resolution."""
    radius = sum((m.kernel_size[0] - 1) // 2 * m.dilation[0] for b in tail for m in b.modules()
                 if isinstance(m, nn.Conv3d))
    return math.ceil(radius / factor)


def _tiles(shape: tuple[int, ...], tile: tuple[int, ...], halo: int) -> Iterator[_Tile]:
    for lo in itertools.product(*(range(0, n, t) for n, t in zip(shape, tile))):
        yield _Tile(lo, tuple(min(a + t, n) for a, t, n in zip(lo, tile, shape)), halo, shape)


@torch.no_grad()
def decode_tiled(autoencoder: nn.Module, z: torch.Tensor, tile: int | tuple[int, ...] = 16) -> torch.Tensor:
    """``autoencoder.decode(z)``, with the full-resolution level run in tiles of ``tile`` voxels of the
    tail's input grid (the grid before the last upsampling; 80x112x80 at the paper size) per axis.

    Equal to the whole decode up to float summation order; see the module docstring for how."""
    decoder = autoencoder.decoder
    head, tail_blocks = split(decoder)
    h = autoencoder.post_quant_conv(z)
    for block in head:
        h = block(h)
    spatial = tuple(h.shape[2:])
    tile = (tile,) * len(spatial) if isinstance(tile, int) else tuple(tile)
    tail = copy.deepcopy(nn.Sequential(*tail_blocks))  # the copy gets the whole-volume GroupNorms
    norms: list[_WholeVolumeGroupNorm] = []
    for name, module in list(tail.named_modules()):
        if isinstance(module, nn.GroupNorm):
            parent_name, _, attr = name.rpartition(".")
            wrapped = _WholeVolumeGroupNorm(module)
            setattr(tail.get_submodule(parent_name) if parent_name else tail, attr, wrapped)
            norms.append(wrapped)
    tiles = list(_tiles(spatial, tile, tail_halo(tail_blocks)))
    for norm in norms:  # one streaming pass per GroupNorm, in network order
        for t in tiles:
            for n in norms:
                n.tile = t
            try:
                tail(h[t.read()])
            except _StatsReady:
                pass
        norm.fix()
    out = None
    for t in tiles:
        for n in norms:
            n.tile = t
        y = tail(h[t.read()])
        if out is None:
            factor = y.shape[2] // (t.read_hi[0] - t.read_lo[0])
            out = y.new_empty((*y.shape[:2], *(n * factor for n in spatial)))
        dst = (slice(None), slice(None), *(slice(a * factor, b * factor) for a, b in zip(t.core_lo, t.core_hi)))
        out[dst] = y[t.core(tuple(y.shape[2:]))]
    return out
