"""Catalog-scale benchmarks of issue 6 (see each module's docstring for its command)."""
