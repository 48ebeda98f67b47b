"""pssr-volume: PSSR super-resolution for teravoxel EM volumes.

Blockwise restoration of undersampled electron-microscopy volumes on a Dask
cluster, written as multiscale OME-Zarr.
"""

from importlib.metadata import PackageNotFoundError, version

from pssr_volume.errors import PssrError

try:
    __version__ = version("pssr-volume")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["PssrError", "__version__"]
