"""Random access to the frames of one shard's chunk container (`vidssl.contracts.CHUNKS`, which
`vidssl.video.chunks.extract_chunks` writes: one row per stored frame)."""
from __future__ import annotations

import h5py
import numpy as np
import pandas as pd

from vidssl.contracts import CHUNK_KEY, CHUNKS
from vidssl.core.images import decode_jpeg


class ChunkStore:
    """Random access to the frames of one shard's container; picklable, opens the file lazily per process."""

    def __init__(self, path: str):
        self.path = str(path)
        self.index = pd.DataFrame(CHUNKS.read(self.path, [name for name in CHUNKS.datasets if name != "jpeg"]))
        self.skipped = CHUNKS.attr(self.path, "skipped", [])
        self._rows = {key: i for i, key in enumerate(zip(self.index.video, self.index.chunk, self.index.frame))}
        self._h5 = self._jpeg = None

    def __getstate__(self):
        return {**self.__dict__, "_h5": None, "_jpeg": None}

    def __len__(self) -> int:
        return len(self.index)

    def chunks(self) -> pd.DataFrame:
        """One row per stored chunk: video, chunk, n_frames."""
        return self.index.groupby(CHUNK_KEY, sort=True).size().rename("n_frames").reset_index()

    def row(self, video: str, chunk: int, frame: int) -> int:
        return self._rows[(video, int(chunk), int(frame))]

    def _jpegs(self):
        if self._jpeg is None:  # the dataset handle, not the file: looking it up by name costs more than the read
            self._h5 = h5py.File(self.path, "r")
            self._jpeg = self._h5["jpeg"]
        return self._jpeg

    def read(self, row: int) -> np.ndarray:
        """The BGR uint8 image stored at `row` (None if it does not decode)."""
        return decode_jpeg(self._jpegs()[row])

    def frame(self, video: str, chunk: int, frame: int) -> np.ndarray:
        return self.read(self.row(video, chunk, frame))

    def chunk_rows(self, video: str, chunk: int) -> np.ndarray:
        """The rows of one chunk's frames, in frame order."""
        return self.index.index[(self.index.video == video) & (self.index.chunk == chunk)].to_numpy()

    def jpeg_rows(self, rows) -> np.ndarray:
        """The stored JPEG bytes at increasing `rows`, in one HDF5 call (a call per frame costs more than decoding it)."""
        return self._jpegs()[np.asarray(rows)]

    def read_rows(self, rows) -> list[np.ndarray]:
        """The BGR uint8 images at increasing `rows` (None for one that does not decode)."""
        return [decode_jpeg(blob) for blob in self.jpeg_rows(rows)]

    def chunk_frames(self, video: str, chunk: int) -> list[np.ndarray]:
        return self.read_rows(self.chunk_rows(video, chunk))
