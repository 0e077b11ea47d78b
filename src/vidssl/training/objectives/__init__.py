"""Training objectives, one module each (see vidssl.training.objective for what a module declares and provides)."""
