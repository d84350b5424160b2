"""ML metadata store (C7): experiments, runs, params, metrics, artifacts, input datasets."""
