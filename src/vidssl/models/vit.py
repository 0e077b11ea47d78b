"""Vision Transformers from torchvision's VisionTransformer modules (ViT-S/16 as DINO uses it; ViT-Ti/16 for CPUs).

A backbone module: it declares the architectures it builds (ARCHS) and the `model` config keys they take (OPTIONS).
The pooled feature is the CLS token after the final layer norm. The position embedding is interpolated to the input's
token grid, so one network takes global and local crops and evaluation images of any size. Boxes are pooled on the
token grid: a box's feature is the mean of the patch tokens whose cells' centres it holds (the cell under its centre
when it holds none), so a whole-image box is the mean patch token. This reads the tokens the transformer already
computed, as a ViT has no later stage a pooled map could pass through (roi_align on the grid would interpolate
between tokens that attention made unlike their neighbours).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from vidssl.models.backbone import Backbone, MapSpec

ARCHS = ("vit_s16", "vit_ti16")
OPTIONS = ("image_size",)
SIZES = {"vit_s16": (16, 12, 6, 384, 1536), "vit_ti16": (16, 12, 3, 192, 768)}  # patch, layers, heads, width, MLP
MIN_SIDE = {"vit_s16": 16, "vit_ti16": 16}  # the smallest input side (one patch): checked at start for every crop


class ViT(nn.Module, Backbone):
    box_level = "tokens"

    def __init__(self, arch: str, *, image_size: int, num_classes: int = 1000, norm_layer=None):
        """`norm_layer` (the ResNets' batch norm choice) does not apply: a ViT normalises each token by LayerNorm."""
        super().__init__()
        patch, layers, heads, width, mlp = SIZES[arch]
        net = torchvision.models.VisionTransformer(max(patch, image_size // patch * patch), patch, layers, heads, width,
                                                   mlp, num_classes=num_classes)
        self.conv_proj, self.class_token, self.encoder = net.conv_proj, net.class_token, net.encoder
        self.fc = net.heads.head
        self.patch, self.feature_dim, self.image_size = patch, width, net.image_size

    def output_shape(self) -> dict[str, MapSpec]:
        return {"tokens": MapSpec(self.feature_dim, self.patch)}

    def options(self) -> dict:
        return {"image_size": self.image_size}

    def position_embedding(self, rows: int, cols: int) -> torch.Tensor:
        """The learnt position embedding, its patch part resized (bicubic) to a rows x cols grid."""
        embedding = self.encoder.pos_embedding
        side = round((embedding.shape[1] - 1) ** 0.5)
        if (rows, cols) == (side, side):
            return embedding
        grid = embedding[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(rows, cols), mode="bicubic", align_corners=False)
        return torch.cat([embedding[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)

    def tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The CLS token (N x C) and the patch tokens as a grid (N x C x rows x cols), after the final layer norm."""
        grid = self.conv_proj(x)
        n, c, rows, cols = grid.shape
        seq = torch.cat([self.class_token.expand(n, -1, -1), grid.flatten(2).transpose(1, 2)], dim=1)
        seq = self.encoder.ln(self.encoder.layers(self.encoder.dropout(seq + self.position_embedding(rows, cols))))
        return seq[:, 0], seq[:, 1:].transpose(1, 2).reshape(n, c, rows, cols)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.tokens(x)[0])

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x)[0]

    def forward_to(self, x: torch.Tensor, level: str) -> torch.Tensor:
        if level != "tokens":
            raise ValueError(f"{level!r} is not a map of this ViT: tokens")
        return self.tokens(x)[1]

    def forward_from(self, maps: torch.Tensor, level: str) -> torch.Tensor:
        """The mean token of a grid (the CLS token is `pooled`)."""
        return maps.mean(dim=(2, 3))

    def features(self, x: torch.Tensor, boxes: torch.Tensor | None = None, box_size: int = 1):
        cls, grid = self.tokens(x)
        return cls, None if boxes is None else box_means(grid, boxes, self.patch)


def box_means(grid: torch.Tensor, boxes: torch.Tensor, patch: int) -> torch.Tensor:
    """Per image, the mean of the grid cells (each `patch` input pixels) whose centres lie in its box (x1, y1, x2, y2
    in input pixels); the cell under the box's centre when none does."""
    n, c, rows, cols = grid.shape
    centres_y = (torch.arange(rows, device=grid.device, dtype=torch.float32) + 0.5) * patch
    centres_x = (torch.arange(cols, device=grid.device, dtype=torch.float32) + 0.5) * patch
    boxes = boxes.float()
    inside_y = (centres_y[None] >= boxes[:, 1:2]) & (centres_y[None] <= boxes[:, 3:4])  # n x rows
    inside_x = (centres_x[None] >= boxes[:, 0:1]) & (centres_x[None] <= boxes[:, 2:3])  # n x cols
    mask = (inside_y[:, :, None] & inside_x[:, None, :]).float()  # n x rows x cols
    centre_row = ((boxes[:, 1] + boxes[:, 3]) / 2 // patch).long().clamp(0, rows - 1)
    centre_col = ((boxes[:, 0] + boxes[:, 2]) / 2 // patch).long().clamp(0, cols - 1)
    empty = mask.sum(dim=(1, 2)) == 0
    mask[empty, centre_row[empty], centre_col[empty]] = 1.0
    weights = mask / mask.sum(dim=(1, 2), keepdim=True)
    return torch.einsum("nchw,nhw->nc", grid.float(), weights).to(grid.dtype)


def build(arch: str, *, image_size: int, **kwargs) -> ViT:
    """A randomly initialised ViT with its classifier head (num_classes), its position embedding for `image_size`."""
    return ViT(arch, image_size=image_size, **kwargs)


def options_of(state_dict: dict) -> dict:
    """The input size a ViT state dict's position embedding was made for."""
    embedding = state_dict.get("encoder.pos_embedding")
    conv = state_dict.get("conv_proj.weight")
    if embedding is None or conv is None:
        return {"image_size": 224}  # not a ViT: the key check then names what is missing
    return {"image_size": round((embedding.shape[1] - 1) ** 0.5) * conv.shape[-1]}
