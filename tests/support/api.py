"""Fixtures: api."""
