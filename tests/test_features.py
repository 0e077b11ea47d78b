"""Feature extraction: HDF5 layout, the representation it stores, and the part crops as a source."""
from __future__ import annotations

import json

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from vidssl.core.io import UserError, write_parquet
from vidssl.evaluation import features
from vidssl.models.backbone import load_backbone, random_backbone


@pytest.fixture
def backbone(tmp_path):
    path = tmp_path / "backbone.pth"
    random_backbone("resnet18", 0, path, width=1.0, stem="imagenet")
    return path


def _index(tmp_path, n=10):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        path = tmp_path / f"img{i}.jpg"
        cv2.imwrite(str(path), rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
        rows.append(dict(dataset="d", path=str(path), label=i % 2, class_name=["cat", "dog"][i % 2], set=i // 2,
                         x1=np.nan, y1=np.nan, x2=np.nan, y2=np.nan))
    rows[0].update(x1=5.0, y1=5.0, x2=30.0, y2=25.0)  # one cropped image
    index = pd.DataFrame(rows)
    write_parquet(index, tmp_path / "index.parquet", sort_by=["set", "path"])
    return index


def test_index_features_match_a_bare_forward(tmp_path, backbone):
    index = _index(tmp_path)
    out = tmp_path / "f.h5"
    counts = features.extract(backbone, [("d", str(tmp_path / "index.parquet"), out)], arch="resnet18", image_size=32,
                              batch_size=4, method="m", workers=0)
    assert counts == {"d": 10}
    model = load_backbone(backbone, "resnet18").eval()
    from vidssl.datasets.eval_sets import load_image
    batch = torch.from_numpy(np.stack([load_image(row, 32) for _, row in index.iterrows()]))
    with torch.inference_mode():
        expected = model(features.normalise(batch, torch.device("cpu"))).numpy()
    with h5py.File(out) as h5:
        assert h5["features"].shape == (10, 512) and h5["features"].dtype == np.float32
        np.testing.assert_allclose(h5["features"][:], expected, rtol=1e-4, atol=1e-5)
        assert (h5["features"][:] >= 0).all(), "pooled after ReLU"
        assert h5["label"][:].tolist() == index.label.tolist() and h5["set"][:].tolist() == index.set.tolist()
        assert h5["class_names"].asstr()[:].tolist() == ["cat", "dog"]
        assert (h5.attrs["model"], h5.attrs["dataset"], h5.attrs["arch"]) == ("m", "d", "resnet18")


def test_part_crops_are_a_source(tmp_path, backbone):
    crops = tmp_path / "crops.h5"
    with h5py.File(crops, "w") as h5:
        h5["images"] = np.random.default_rng(1).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
        h5["label"] = np.array([0, 1, 1, 0, 1])
        h5.attrs["classes"] = json.dumps(["car", "bird"])
    out = tmp_path / "p.h5"
    features.extract(backbone, [("partseg", str(crops), out)], arch="resnet18", image_size=32, batch_size=2,
                     method="m", workers=0)
    with h5py.File(out) as h5:
        assert h5["features"].shape == (5, 512)
        assert h5["label"][:].tolist() == [0, 1, 1, 0, 1] and (h5["set"][:] == -1).all()


def test_unreadable_backbone_is_a_user_error(tmp_path):
    _index(tmp_path, 2)
    (tmp_path / "bad.pth").write_bytes(b"junk")
    with pytest.raises(UserError):
        features.extract(tmp_path / "bad.pth", [("d", str(tmp_path / "index.parquet"), tmp_path / "x.h5")],
                         arch="resnet18", image_size=32, batch_size=2, method="m")
    assert not (tmp_path / "x.h5").exists()
