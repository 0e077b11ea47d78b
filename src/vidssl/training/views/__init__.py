"""View sources: what one training sample is, one module each.

A view module declares `INPUTS` (the file sets it reads: keys of vidssl.training.methods.INPUTS), `IMAGE_KEYS` (the
images of a sample, each one view through the network) and `LABELS` (True: its samples carry a class label, from the
labelled set), and provides, for a vidssl.training.samples.TrainingSamples `data`:

- `units(data)`: the array an epoch permutes (frames, pairs, images);
- `frame_keys(data, unit)`: the (store, row) of every stored frame the unit needs;
- `sample(data, unit, images, rng)`: the sample (a dict of tensors), from the unit's frames and a NumPy generator
  seeded by (seed, index), through `data.augment`.
"""
