"""Generators and maintenance tools kept out of the rstfleet wheel (run from the repository root)."""
