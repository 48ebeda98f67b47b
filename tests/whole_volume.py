"""The reference the engine must match: one whole-volume inference, no blocks."""

from __future__ import annotations

import numpy as np

from pssr_volume.blocks import box_slices
from pssr_volume.intensity import denormalize
from pssr_volume.plan import Job
from pssr_volume.tasks import network, read_tile


def predict_whole(job: Job) -> np.ndarray:
    """Restore the whole volume in one tile: the volume reflect-padded by the halo and up
    to the network grid, restored at once, cropped, mapped back and rounded. Needs the
    whole volume in memory."""
    g = job.grid
    tile = [(-g.halo[0], g.in_shape[0] + g.halo[0])]
    for n, h in zip(g.in_shape[1:], g.halo[1:]):
        tile.append((-h, -(-n // g.grid) * g.grid + h))
    pred = network(job, read_tile(job, tuple(tile)), job.noise)
    s = g.scale
    origin = (0, tile[1][0] * s, tile[2][0] * s)
    full = tuple((0, n) for n in g.out_shape)
    return denormalize(pred[box_slices(full, origin)], *job.norm, job.dtype)
