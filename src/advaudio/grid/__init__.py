"""The grid on a cluster: cells, the engine-neutral cell runner, and the local, SLURM and Ray executors."""
