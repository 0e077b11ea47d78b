"""Readers of external dataset formats (Pascal-Part, ...)."""
