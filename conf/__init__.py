"""dlhw's Hydra configuration tree (installed as the package ``dlhw.conf``)."""
