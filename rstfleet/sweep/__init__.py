"""Reaching the fleet: the bounded pool of sessions, the two-phase triage, live progress."""
