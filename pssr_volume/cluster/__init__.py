"""Where blocks run: Dask executors (local, CUDA, SLURM, an existing scheduler) and SLURM profiles.

The only package that imports ``dask.distributed``, ``dask_cuda`` or ``dask_jobqueue``.
"""
