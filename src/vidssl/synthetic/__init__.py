"""The embedded default world: videos, a Pascal-Part-format part set, a labelled set and invariance sets.

Every object is drawn from a per-class template of named parts (`templates`), rasterised with exact part masks
(`render`). Each generator writes one part of the world: `videos`, `part_set`, `labelled`, `trajectories`. Every
image, video and trajectory draws its randomness from its own seed stream (seed, kind, ids), so outputs do not
depend on generation order or on how many other items are generated.
"""
from vidssl.synthetic.labelled import generate_labelled
from vidssl.synthetic.part_set import VOC_CLASSES, generate_partseg
from vidssl.synthetic.render import draw_instance, make_background, render_object, sample_instance
from vidssl.synthetic.templates import CLASSES
from vidssl.synthetic.trajectories import TRAJECTORY_DATASETS, generate_trajectories
from vidssl.synthetic.videos import generate_videos

__all__ = [
    "CLASSES", "TRAJECTORY_DATASETS", "VOC_CLASSES", "draw_instance", "generate_labelled", "generate_partseg",
    "generate_trajectories", "generate_videos", "make_background", "render_object", "sample_instance",
]
