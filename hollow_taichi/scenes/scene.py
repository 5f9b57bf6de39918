"""What a loaded scene is: image sets with their cameras, per split, and the scene box."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .cameras import Cameras


def evenly_spaced(total: int, count: int | None) -> list[int]:
    """`count` indices spread evenly over range(total), round(i * total / count); all of them when
    count is None or at least total. A quick evaluation on a few views then still sees the whole orbit."""
    if count is not None and count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if count is None or count >= total:
        return list(range(total))
    return [round(i * total / count) for i in range(count)]


@dataclass
class ImageSet:
    """images (N, H, W, C) uint8 with C = 4 (RGBA, straight alpha) or 3 (RGB), one per camera."""

    images: torch.Tensor
    cameras: Cameras
    paths: list[str]

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, indices: list[int]) -> "ImageSet":
        """The frames at `indices`, in that order (say, a few test views for a quick evaluation)."""
        return ImageSet(self.images[indices], self.cameras.subset(indices), [self.paths[i] for i in indices])


@dataclass
class Scene:
    """A scene in NGP space: the object inside [0, 1]^3, the scene box centred on (0.5, 0.5, 0.5).

    aabb_scale is a power of two: the box's edge length. skipped: per split, how many frames were
    left out because their image files are missing (load_scene's skip_missing).
    """

    name: str
    root: str
    train: ImageSet
    val: ImageSet
    test: ImageSet
    aabb_scale: int
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def aabb(self) -> torch.Tensor:
        """(2, 3) float32: the scene box's min and max corners."""
        half = self.aabb_scale / 2
        return torch.tensor([[0.5 - half] * 3, [0.5 + half] * 3], dtype=torch.float32)
