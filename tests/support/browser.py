"""Fixtures: browser."""
