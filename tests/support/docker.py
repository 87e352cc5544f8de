"""Fixtures: docker."""
