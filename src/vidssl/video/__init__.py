"""Video sources, the manifest, and the chunk containers every later stage reads frames from."""
