"""Figures for the report: track contact sheets and training curves."""
