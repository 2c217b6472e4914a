"""Metrics shared by all families."""
