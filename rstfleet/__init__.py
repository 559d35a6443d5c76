"""rstfleet: find which hosts of a fleet send TCP resets, on which ports, to whom, and why."""

__version__ = "0.1.0"
