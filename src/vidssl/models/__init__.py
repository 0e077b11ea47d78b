"""Backbones (feature maps by name and stride, pooled and box features) and the networks objectives build on them."""
