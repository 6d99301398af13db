"""Helpers for testing code that uses tierstore."""
