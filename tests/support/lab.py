"""Fixtures: lab."""
