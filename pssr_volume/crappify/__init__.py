"""Degradations: the seeded crappifier steps and presets, and degrading whole volumes."""
