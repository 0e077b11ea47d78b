"""Selective-search proposals, unsupervised tracks, and the frame and track pairs training reads."""
