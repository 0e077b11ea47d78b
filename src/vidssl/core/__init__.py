"""What every stage uses: errors, names, atomic I/O, images, artifact integrity, the extension registry, GPU claims
and the script runner."""
