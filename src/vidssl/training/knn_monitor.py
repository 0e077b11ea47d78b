"""The kNN monitor of a training run: top-1 of the weighted cosine kNN (vidssl.evaluation.knn) on the pooled features
of a labelled set."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vidssl.evaluation.knn import knn_k, knn_predict
from vidssl.training.augment import eval_transform
from vidssl.training.samples import read_labelled_image


class KnnMonitor:
    """Weighted cosine kNN (MoCo demo: k 200, weights exp(sim / 0.1)) on a fixed seeded half/half split of a seeded
    sample of at most `samples` images of a labelled set: only rank 0 runs it, so it must stay short next to a step
    (the other ranks wait for it in their next collective), and an ImageNet-sized set must never be held whole."""

    def __init__(self, items: list[tuple[str, int]], image_size: int, seed: int, samples: int,
                 k: int = 200):
        chosen = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed))[:samples]
        images = torch.stack([eval_transform(read_labelled_image(items[i][0]), image_size) for i in chosen.tolist()])
        labels = torch.tensor([items[i][1] for i in chosen.tolist()])
        half = len(chosen) // 2  # the sample is in random order: its halves are the bank and the query
        self.bank, self.query = (images[:half], labels[:half]), (images[half:], labels[half:])
        # k 200 suits ImageNet-sized banks; in a bank of a few hundred it would outvote every neighbourhood
        self.k = knn_k(half, k)

    @torch.no_grad()
    def features(self, net, images: torch.Tensor, device) -> torch.Tensor:
        out = [net.pooled(batch.to(device)).float() for batch in images.split(256)]
        return F.normalize(torch.cat(out), dim=1)

    def __call__(self, net, device) -> float:
        was_training = net.training
        net.eval()
        bank, query = self.features(net, self.bank[0], device), self.features(net, self.query[0], device)
        net.train(was_training)
        predicted = knn_predict(bank.cpu().numpy(), self.bank[1].numpy(), query.cpu().numpy(), k=self.k, temperature=0.1)
        return float((torch.from_numpy(predicted) == self.query[1]).float().mean())  # float32, as train.csv has held it
