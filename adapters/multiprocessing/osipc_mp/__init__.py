"""multiprocessing look-alikes by name (placeholder)."""
