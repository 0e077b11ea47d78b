"""Frozen features and what is measured on them: invariance, classification, the part probe, Table 5 and its intervals."""
