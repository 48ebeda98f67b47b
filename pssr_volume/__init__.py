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

__all__ = ["PssrError", "__version__", "open_ome_zarr"]


def __getattr__(name: str) -> object:
    """Lazy exports: ``open_ome_zarr`` imports xarray, dask and zarr only when used."""
    if name == "open_ome_zarr":
        from pssr_volume.io.xarray import open_ome_zarr

        return open_ome_zarr
    raise AttributeError(f"module 'pssr_volume' has no attribute {name!r}")
