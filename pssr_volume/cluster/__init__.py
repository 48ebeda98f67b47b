"""Where blocks run: Dask executors (local, CUDA, SLURM, an existing scheduler) and SLURM profiles.

``executors`` checks a run's cluster settings into one ``ClusterSpec`` and opens
executors; ``slurm`` starts, watches and replaces SLURM worker jobs; ``profile``
reads and checks the SLURM profile files. The only package that imports
``dask.distributed``, ``dask_cuda`` or ``dask_jobqueue``.
"""
