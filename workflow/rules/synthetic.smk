# The embedded synthetic world (vidssl.synthetic), one rule per part so that a change to one part's size
# regenerates only that part: synth_videos, synth_pascal_part, synth_labelled, synth_trajectories.

SYNTH_PART_KEYS = {
    "videos": ["seed", "classes", "materials", "videos", "frames", "video_size", "camera", "background", "object_size"],
    "pascal_part": ["seed", "classes", "materials", "partseg_images", "image_size"],
    "labelled": ["seed", "classes", "materials", "labelled_per_class", "image_size"],
    "trajectories": ["seed", "classes", "materials", "trajectory_sets", "trajectory_length", "image_size"],
}

for synth_part, keys in SYNTH_PART_KEYS.items():

    rule:
        name:
            f"synth_{synth_part}"
        output:
            directory(f"{SYNTH}/{synth_part}"),
        params:
            part=synth_part,
            world={key: config["synthetic"][key] for key in keys},
        log:
            f"logs/synth_{synth_part}.log",
        conda:
            CONDA_ENV
        resources:
            mem_mb=2000,
            runtime=30,
        script:
            "../scripts/synthetic.py"
