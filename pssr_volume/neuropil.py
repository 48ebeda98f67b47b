"""A synthetic neuropil scene, drawn slice by slice at 4.6 nm pixels.

Tightly packed neurite profiles (a warped power diagram of seeds that drift and grow across
z) with dark membranes, a few dark mitochondria with lighter cristae, and clusters of
synaptic vesicles. :func:`make_scene` lays the 3-D scene out from a generator;
:func:`render_slice` paints one section of it in 8-bit grey levels (as float32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.spatial import cKDTree

_CELL_AREA = 3600.0  # mean neurite profile area, HR px^2 (about 65 px = 300 nm across)
_COARSE = 4  # grid step (HR px) of the nearest-seed candidate search
_CANDIDATES = 5  # seeds considered per coarse grid point
_MARGIN = 96  # HR px of seeds outside the field of view on every side

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class _Mito:
    """A mitochondrion: an ellipse at the centre of its cell, breathing slowly along z."""

    cell: int
    a: float  # semi-axes, px
    b: float
    angle: float  # long axis, radians
    rate: float  # of the size change along z, radians per slice
    phase: float
    period: float  # cristae spacing, px


@dataclass(frozen=True)
class _Vesicles:
    """A cluster of synaptic vesicles (spheres) in one cell."""

    cell: int
    offsets: F32  # (m, 2) from the cell centre, px
    radii: F32  # (m,) px
    z_centre: F32  # (m,) slice of each sphere's equator


@dataclass(frozen=True)
class Scene:
    """Random 3-D layout, fixed per seed; slice ``z`` is rendered from it."""

    shape: tuple[int, int]  # HR (y, x)
    pos: F32  # (n, 2) seed positions at z = 0
    vel: F32  # (n, 2) drift per slice, px
    weight: F32  # (n,) power-diagram weights (squared radii) at z = 0
    dweight: F32  # (n,) weight change per slice
    grey: F32  # (n,) cytoplasm grey level per cell
    mem_dark: F32  # (n,) membrane core grey level per cell (a border takes the pair's mean)
    mem_width: F32  # (n,) membrane profile half-width, px
    warp: F32  # (2, 2, y/4 + 1, x/4 + 1) two smooth displacement fields per axis, mixed along z
    mottle: F32  # (y/8 + 1, x/8 + 1) slow grey variation shared by all slices
    mitos: tuple[_Mito, ...]
    vesicles: tuple[_Vesicles, ...]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> F32:
    """Gaussian-filtered white noise with unit standard deviation, even on a small field."""
    pad = 4 * int(math.ceil(sigma))  # drawn larger and cropped: no boundary effects
    noise = rng.standard_normal(tuple(s + 2 * pad for s in shape), dtype=np.float32)
    field = ndimage.gaussian_filter(noise, sigma)[tuple(slice(pad, pad + s) for s in shape)]
    delta = np.zeros(2 * pad + 1)
    delta[pad] = 1.0
    gain = float(np.sqrt(np.sum(ndimage.gaussian_filter1d(delta, sigma) ** 2))) ** len(shape)
    return (field / np.float32(gain)).astype(np.float32)


def _upsample(field: F32, factor: int, shape: tuple[int, int]) -> F32:
    """Linear interpolation of a coarse grid (node i at pixel i * factor) to ``shape`` pixels."""
    hc, wc = -(-shape[0] // factor), -(-shape[1] // factor)
    f = field[: hc + 1, : wc + 1]
    t = np.arange(factor, dtype=np.float32) / factor
    rows = (f[:-1, None] * (1 - t)[:, None] + f[1:, None] * t[:, None]).reshape(-1, wc + 1)
    out = rows[:, :-1, None] * (1 - t) + rows[:, 1:, None] * t
    # float32 throughout at runtime; numpy's stubs widen float32-array arithmetic to float64
    return cast(F32, out.reshape(hc * factor, wc * factor)[: shape[0], : shape[1]])


def _warp_field(rng: np.random.Generator, shape: tuple[int, int]) -> F32:
    """Displacement (HR px) on the coarse grid: broad bends plus finer wiggles of borders."""
    broad, fine, wiggle = (_smooth_noise(rng, shape, s) for s in (14, 5, 2))
    return np.float32(9.0) * broad + np.float32(4.0) * fine + np.float32(1.5) * wiggle


def make_scene(rng: np.random.Generator, shape: tuple[int, int], nz: int) -> Scene:
    """Draw the 3-D layout of an HR field of ``shape`` pixels and ``nz`` slices."""
    h, w = shape
    span = np.array([h + 2 * _MARGIN, w + 2 * _MARGIN], dtype=np.float32)
    n = max(8, int(round(span.prod() / _CELL_AREA)))
    spacing = float(np.sqrt(_CELL_AREA))
    big = rng.random(n) < 0.15
    radius = np.where(big, rng.uniform(0.8, 1.4, n), rng.uniform(0.0, 0.6, n)) * spacing
    weight = (radius**2).astype(np.float32)
    large = np.flatnonzero(big)  # only large profiles hold organelles
    mito_cells = rng.choice(large, size=min(len(large), max(1, n // 14)), replace=False)
    mitos = tuple(
        _Mito(int(c), float(rng.uniform(0.55, 0.85) * radius[c]), float(rng.uniform(18, 26)),
              float(rng.uniform(0, np.pi)), float(rng.uniform(0.15, 0.35)),
              float(rng.uniform(0, 6)), float(rng.uniform(9, 13)))
        for c in mito_cells
    )
    free = np.setdiff1d(large, mito_cells)
    ves_cells = rng.choice(free, size=min(len(free), max(1, n // 16)), replace=False)
    vesicles = []
    for c in ves_cells:
        m = int(rng.integers(25, 60))
        offsets = (rng.standard_normal((m, 2)) * 0.25 * radius[c]).astype(np.float32)
        radii = rng.uniform(4.0, 5.0, m).astype(np.float32)
        zc = rng.uniform(-1.0, nz, m).astype(np.float32)
        vesicles.append(_Vesicles(int(c), offsets, radii, zc))
    # darker (dendrite- or glia-like) and lighter (axon-like) profiles
    grey = np.where(rng.random(n) < 0.35, rng.uniform(120, 150, n), rng.uniform(160, 200, n))
    return Scene(
        shape=shape,
        pos=(rng.random((n, 2)) * span - _MARGIN).astype(np.float32),
        vel=rng.normal(0.0, 1.5, (n, 2)).astype(np.float32),
        weight=weight,
        dweight=(rng.normal(0.0, 0.04, n) * weight + rng.normal(0, 20, n)).astype(np.float32),
        grey=grey.astype(np.float32),
        mem_dark=rng.uniform(20, 40, n).astype(np.float32),
        mem_width=rng.uniform(1.4, 1.9, n).astype(np.float32),
        warp=np.stack([[_warp_field(rng, (h // _COARSE + 1, w // _COARSE + 1)) for _ in range(2)]
                       for _ in range(2)]),
        mottle=_smooth_noise(rng, (-(-h // 8) + 1, -(-w // 8) + 1), 1.5),
        mitos=mitos,
        vesicles=tuple(vesicles),
    )


def _nearest_cells(
    qy: F32, qx: F32, cand: NDArray[np.intp], pos: F32, weight: F32
) -> tuple[NDArray[np.intp], NDArray[np.intp], F32, F32]:
    """Exact power-diagram cell of points (qy, qx) among candidate seeds ``cand`` (axis 0).

    Returns the cell, the neighbour across the nearest border, and the distances to the nearest
    and second-nearest borders (bisector lines of the cell's seed and the other candidates).
    """
    sy, sx = pos[cand, 0], pos[cand, 1]
    power = (qy - sy) ** 2 + (qx - sx) ** 2 - weight[cand]
    shape = power.shape
    k1 = np.argmin(power, axis=0)[None]
    own = np.take_along_axis(np.broadcast_to(cand, shape), k1, 0)[0]
    half_sep = 2.0 * np.sqrt((sy - pos[own, 0]) ** 2 + (sx - pos[own, 1]) ** 2)
    power -= np.take_along_axis(power, k1, 0)
    bisect = power / np.maximum(half_sep, 1e-6)
    np.put_along_axis(bisect, k1, np.inf, 0)  # not a border with itself
    k2 = np.argmin(bisect, axis=0)[None]
    other = np.take_along_axis(np.broadcast_to(cand, shape), k2, 0)[0]
    near = np.take_along_axis(bisect, k2, 0)[0]
    np.put_along_axis(bisect, k2, np.inf, 0)
    return own, other, near, bisect.min(axis=0)


def _cells(scene: Scene, z: int) -> tuple[NDArray[np.intp], NDArray[np.intp], F32, F32]:
    """Cell of every HR pixel, its neighbour cell, and distances to the two nearest borders.

    Cells are a power diagram of the drifting seeds in smoothly warped coordinates, so that
    borders bend. It is solved exactly on the corners of 4 x 4 pixel blocks (k-d tree over
    the seeds lifted to 3-D, where power distance is Euclidean), and per pixel only in blocks
    near a border; elsewhere the distances are interpolated from the corners.
    """
    h, w = scene.shape
    n = _COARSE
    hc, wc = h // n, w // n
    pos = scene.pos + z * scene.vel
    weight = np.maximum(scene.weight + z * scene.dweight, 0.0)
    angle = 0.25 * z
    warp = math.cos(angle) * scene.warp[:, 0] + math.sin(angle) * scene.warp[:, 1]
    # Block corners: exact solution with k-d tree candidates.
    ny = n * np.arange(hc + 1, dtype=np.float32)[:, None] + warp[0]
    nx = n * np.arange(wc + 1, dtype=np.float32)[None, :] + warp[1]
    tree = cKDTree(np.column_stack([pos, np.sqrt(weight.max() - weight)]))
    corners = np.column_stack([ny.ravel(), nx.ravel(), np.zeros(ny.size)])
    _, cand = tree.query(corners, k=_CANDIDATES, workers=-1)
    cand = np.moveaxis(cand.reshape(hc + 1, wc + 1, _CANDIDATES), -1, 0)
    c_first, c_second, c_near, c_near2 = _nearest_cells(ny, nx, cand, pos, weight)
    # Pixels: interpolate, then solve exactly where a block's corners disagree or lie near a
    # border (within the membrane's reach plus the block's size).
    first = np.repeat(np.repeat(c_first[:-1, :-1], n, 0), n, 1)
    second = np.repeat(np.repeat(c_second[:-1, :-1], n, 0), n, 1)
    near = _upsample(c_near, n, (h, w))
    near2 = np.full((h, w), 1e3, np.float32)  # only matters near borders: set below
    corner_views = [c_first[:-1, :-1], c_first[1:, :-1], c_first[:-1, 1:], c_first[1:, 1:]]
    mixed = np.any([v != corner_views[0] for v in corner_views[1:]], axis=0)
    close = np.minimum.reduce([c_near[:-1, :-1], c_near[1:, :-1], c_near[:-1, 1:], c_near[1:, 1:]])
    todo = mixed | (close < 6.0)  # core reach (3 px) + half the block's diagonal
    if todo.any():
        by, bx = np.nonzero(todo)
        t = np.arange(n, dtype=np.float32) / n
        ty, tx = t[None, :, None], t[None, None, :]

        def at_pixels(field: F32) -> F32:  # bilinear from the block corners, (blocks, n, n)
            f00, f10 = field[by, bx, None, None], field[by + 1, bx, None, None]
            f01, f11 = field[by, bx + 1, None, None], field[by + 1, bx + 1, None, None]
            out = (f00 * (1 - ty) + f10 * ty) * (1 - tx) + (f01 * (1 - ty) + f11 * ty) * tx
            return cast(F32, out)  # float32 at runtime; the stubs widen to float64

        qy = (n * by[:, None, None] + n * ty).astype(np.float32) + at_pixels(warp[0])
        qx = (n * bx[:, None, None] + n * tx).astype(np.float32) + at_pixels(warp[1])
        # four candidates per pixel suffice near a border (its two cells and a junction's third)
        exact = _nearest_cells(qy, qx, cand[:4, by, bx, None, None], pos, weight)
        fulls: tuple[np.ndarray, ...] = (first, second, near, near2)
        for full, part in zip(fulls, exact, strict=True):
            full.reshape(hc, n, wc, n).transpose(0, 2, 1, 3)[todo] = part
    return first, second, near, near2


def _window(
    shape: tuple[int, int], cy: float, cx: float, half: float
) -> tuple[slice, slice, NDArray[np.float32], NDArray[np.float32]] | None:
    """Clipped box around (cy, cx) and its pixel coordinates relative to the centre."""
    y0, y1 = max(int(cy - half), 0), min(int(cy + half) + 1, shape[0])
    x0, x1 = max(int(cx - half), 0), min(int(cx + half) + 1, shape[1])
    if y0 >= y1 or x0 >= x1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    return slice(y0, y1), slice(x0, x1), yy - cy, xx - cx


def _centres(label: NDArray[np.intp], n: int) -> F32:
    """(n, 3): centroid y, x and equivalent radius of each cell's visible part (0 if absent)."""
    h, w = label.shape
    flat = label.ravel()
    area = np.bincount(flat, minlength=n)
    sy = np.bincount(flat, weights=np.repeat(np.arange(h, dtype=np.float64), w), minlength=n)
    sx = np.bincount(flat, weights=np.tile(np.arange(w, dtype=np.float64), h), minlength=n)
    safe = np.maximum(area, 1)
    return np.column_stack([sy / safe, sx / safe, np.sqrt(area / np.pi)]).astype(np.float32)


def _paint_mitochondria(
    img: F32, label: NDArray[np.intp], centres: F32, scene: Scene, z: int
) -> None:
    for m in scene.mitos:
        cy, cx, size = (float(v) for v in centres[m.cell])
        a_z = min(m.a * (1.0 + 0.12 * math.sin(m.rate * z + m.phase)), 0.8 * size)
        b = min(m.b, 0.5 * size)
        if b < 8:
            continue
        box = _window(scene.shape, cy, cx, a_z + 4)
        if box is None:
            continue
        ys, xs, ry, rx = box
        th = m.angle + 0.05 * z
        u = rx * np.cos(th) + ry * np.sin(th)  # along the long axis
        v = -rx * np.sin(th) + ry * np.cos(th)
        inside = ((u / a_z) ** 2 + (v / b) ** 2 < 1.0) & (label[ys, xs] == m.cell)
        if not inside.any():
            continue
        depth = ndimage.distance_transform_edt(inside).astype(np.float32)
        # Cristae: thin, wavy, lighter lamellae across the long axis, of uneven length.
        wave = 2 * np.pi * u / m.period + np.sin(v / 6.0 + m.phase) + 0.7 * np.sin(u / 9.0)
        crista = np.floor(wave / (2 * np.pi) + 0.5)  # index of the nearest crista
        reach = 0.45 + 0.45 * np.sin(12.9898 * crista + m.phase) ** 2
        cristae = (np.cos(wave) > 0.75) & (depth > 3.5) & (np.abs(v) < reach * b)
        value = np.where(cristae, 140.0, 88.0).astype(np.float32)
        value -= 50.0 * np.exp(-(((depth - 1.5) / 1.2) ** 2))  # double outer membrane
        region = img[ys, xs]
        region[inside] = value[inside]


def _paint_vesicles(
    img: F32, label: NDArray[np.intp], centres: F32, scene: Scene, z: int
) -> None:
    for v in scene.vesicles:
        if centres[v.cell, 2] < 10:
            continue
        # A sphere cut by a section: the profile shrinks near the ends of its z range.
        t = np.clip(1.0 - ((z - v.z_centre) / 1.3) ** 2, 0.0, None)
        seen = t > 0.15
        centre = centres[v.cell, :2]
        box = _window(scene.shape, centre[0], centre[1], float(np.abs(v.offsets).max()) + 8)
        if box is None or not seen.any():
            continue
        ys, xs, ry, rx = box
        d = np.full(ry.shape, np.inf, np.float32)  # signed distance to the nearest vesicle
        for (py, px), r in zip(v.offsets[seen], v.radii[seen] * np.sqrt(t[seen]), strict=True):
            d = np.minimum(d, np.hypot(ry - py, rx - px) - r)
        own = label[ys, xs] == v.cell
        rim = np.exp(-((d / 1.0) ** 2)) * own
        lumen = ((d < -1.0) & own).astype(np.float32)
        region = img[ys, xs]
        region += lumen * (185.0 - region) * 0.7
        region -= rim * (region - 55.0)


def render_slice(scene: Scene, z: int, rng: np.random.Generator) -> F32:
    """Slice ``z`` of the scene in 8-bit grey levels (float, not yet clipped)."""
    h, w = scene.shape
    first, second, border, border2 = _cells(scene, z)
    fresh = _smooth_noise(rng, scene.mottle.shape, 1.5)
    mottle = _upsample(np.float32(0.8) * scene.mottle + np.float32(0.6) * fresh, 8, (h, w))
    blotch = _upsample(_smooth_noise(rng, (-(-h // 4) + 1, -(-w // 4) + 1), 0.8), 4, (h, w))
    # blotches of 8-16 px (40-70 nm): texture at the input's own scale that no coarser view
    # predicts, as in real sections; at half this amplitude the scene was too predictable
    # from coarser views and `run`'s scale check took the demo input for 4x finer data
    img = scene.grey[first] + 16.0 * mottle + 28.0 * blotch
    dark = 0.5 * (scene.mem_dark[first] + scene.mem_dark[second])
    width = 0.5 * (scene.mem_width[first] + scene.mem_width[second])
    core = np.exp(-((border / width) ** 4))  # flat-bottomed: about 1.8 x width px wide
    fuzz = np.clip(0.45 + 0.3 * mottle, 0.0, 0.9)  # patchy dark material along membranes
    halo = fuzz * np.exp(-((border / (4.0 * width)) ** 2))
    junction = np.exp(-((border / (2.5 * width)) ** 2 + (border2 / (2.5 * width)) ** 2))
    img = img + (dark - img) * np.maximum(np.maximum(core, halo), junction)
    centres = _centres(first, len(scene.pos))
    _paint_mitochondria(img, first, centres, scene, z)
    _paint_vesicles(img, first, centres, scene, z)
    # Granular texture of the section (weaker in dark, stained structures), then the
    # microscope's slight blur and pixel noise.
    img *= 1.0 + 0.38 * rng.standard_normal((h, w), dtype=np.float32)
    img -= np.float32(250.0) * (rng.random((h, w), dtype=np.float32) < 0.004)  # dark specks
    img = ndimage.gaussian_filter(img, 0.9) + 4.0 * rng.standard_normal((h, w), dtype=np.float32)
    return img.astype(np.float32)
