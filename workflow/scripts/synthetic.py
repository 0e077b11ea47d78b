"""Snakemake adapter: generate one part of the synthetic world."""
from vidssl import synthetic
from vidssl.core.cli import run_stage

part, world, out = snakemake.params.part, snakemake.params.world, snakemake.output[0]
common = dict(classes=world["classes"], seed=world["seed"], materials=world["materials"])
generators = {
    "videos": lambda: synthetic.generate_videos(
        out, n_videos=world["videos"], n_frames=world["frames"], size=tuple(world["video_size"]), camera=world["camera"],
        background=world["background"],
        object_size=world["object_size"], **common),
    "pascal_part": lambda: synthetic.generate_partseg(
        out, n_images=world["partseg_images"], image_size=world["image_size"], **common),
    "labelled": lambda: synthetic.generate_labelled(
        out, per_class=world["labelled_per_class"], image_size=world["image_size"], **common),
    "trajectories": lambda: synthetic.generate_trajectories(
        out, sets_per_class=world["trajectory_sets"], set_length=world["trajectory_length"],
        image_size=world["image_size"], **common),
}
run_stage(snakemake, lambda log: generators[part]())
