"""Share of an image's power above 1/4 Nyquist, a check that data is sharp enough to degrade x4.

    python docs/training_data/high_frequency_power.py 'DIR/*.png' '../shared/data/X/raw/*.tif'

For each glob: the median (min, max) over its 2-D images (each section of a stack) of the power
of the Hann-windowed FFT at radial frequencies above 0.125 cycles per pixel, over all power but
the mean's. A grid whose
content is already smooth (resampled, binned, or blurred) scores low.
"""

from __future__ import annotations

import glob
import sys

import numpy as np
import tifffile
from PIL import Image


def high_frequency_share(image: np.ndarray) -> float:
    a = image.astype(np.float64) - image.mean()
    a *= np.hanning(a.shape[0])[:, None] * np.hanning(a.shape[1])[None, :]
    power = np.abs(np.fft.fft2(a)) ** 2
    radius = np.hypot(np.fft.fftfreq(a.shape[0])[:, None], np.fft.fftfreq(a.shape[1])[None, :])
    return float(power[radius > 0.125].sum() / power[radius > 0].sum())


def _read(path: str) -> np.ndarray:
    if path.lower().endswith((".tif", ".tiff")):
        return np.asarray(tifffile.imread(path))
    return np.asarray(Image.open(path).convert("L"))


def main() -> None:
    for pattern in sys.argv[1:]:
        shares = [high_frequency_share(section) for f in sorted(glob.glob(pattern))
                  for section in _read(f).reshape(-1, *_read(f).shape[-2:])]  # stacks too
        if not shares:
            sys.exit(f"error: nothing matches {pattern}")
        print(f"{pattern}: {len(shares)} image(s), power above 1/4 Nyquist: median "
              f"{np.median(shares):.3f} (min {min(shares):.3f}, max {max(shares):.3f})")


if __name__ == "__main__":
    main()
