"""The trainer, the methods (an objective on a view source), their samples, augmentation, monitors and resume identity."""
