"""Report building blocks: figures (plots) and run discovery / reading (runs)."""
