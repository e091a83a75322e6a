"""`frugal bench`: end-to-end savings on labelled workloads, against the baselines."""
