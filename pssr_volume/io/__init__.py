"""Reading inputs and writing OME-Zarr outputs."""
