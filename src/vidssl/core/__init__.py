"""What every stage uses: errors, names, atomic I/O, images, artifact integrity, the config checks, GPU claims and the script runner."""
