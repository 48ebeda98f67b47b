"""Where a run's data-consistency figures are kept in its output (docs/FORMATS.md).

The volume's figure goes into the provenance (``pssr_volume.consistency``) of every network
run; with ``run --consistency-map`` the figure of each block is also written as an array
``consistency`` in the image group, one float32 value per block (z, y, x block counts, NaN
for a block without a figure), next to the levels and not one of them (NGFF readers list
only the multiscale datasets). Both are written once, by the driver, after the last task:
one writer, as for every array of an output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pssr_volume.consistency import Residual
from pssr_volume.io.ome_zarr import image_group, update_provenance
from pssr_volume.io.stores import Location

MAP = "consistency"


def record_consistency(path: Location, residuals: dict[tuple[int, int, int], Residual],
                       counts: tuple[int, int, int], block: tuple[int, int, int],
                       write_map: bool) -> dict[str, Any]:
    """Record the volume's figure in the provenance and, with ``write_map``, the per-block
    map; returns what was recorded."""
    total = sum(residuals.values(), Residual())
    figure = {"ratio": total.ratio, "rms": total.rms, "blocks": len(residuals),
              "map": MAP if write_map else None}
    update_provenance(path, consistency=figure)
    if write_map:
        values = np.full(counts, np.nan, np.float32)
        for index, r in residuals.items():
            values[index] = r.ratio if r.ratio is not None else r.rms
        group = image_group(path, "r+")
        array = group.create_array(MAP, shape=counts, chunks=counts, dtype="float32",
                                   fill_value=float("nan"), overwrite=True)
        array[...] = values
        array.attrs["pssr_volume"] = {
            "what": "per block: RMS of (restoration area-averaged back to the input grid - "
                    "input) over RMS input noise" if total.ratio is not None else
                    "per block: RMS of (restoration area-averaged back to the input grid - "
                    "input), in units of the normalised intensity range",
            "block_shape_output_voxels": list(block),
        }
    return figure
