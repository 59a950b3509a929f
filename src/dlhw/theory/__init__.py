"""Theory tools as library code: the automatic-differentiation engine and counting helpers."""
