"""dlhw's Hydra sweepers (Hydra finds plugins only in the ``hydra_plugins`` namespace)."""
