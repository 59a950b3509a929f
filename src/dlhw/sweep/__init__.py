"""Many runs: the sweep callback, the launchers (Ray), devices and threads per job, the Optuna search."""
