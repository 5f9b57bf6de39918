"""How close recovered camera poses are to the true ones, after the similarity (scale, rotation,
translation) that best maps one set onto the other: COLMAP's poses are known up to such a transform.

The similarity is Umeyama's least-squares fit over each camera's centre and the tips of its three
axes (each axis drawn as long as the spread of the centres). The centres alone would do for cameras
spread in all directions; a handheld walk puts them near one line, which leaves the rotation about
that line to the noise of a few millimetres of position.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PoseErrors:
    """Per camera after alignment: rotation error in degrees and centre error in the true poses' units."""

    rotation_degrees: np.ndarray
    position: np.ndarray

    def summary(self, scene_size: float) -> dict:
        """Mean and largest errors; positions also as a percentage of `scene_size`."""
        return {"cameras": len(self.position),
                "rotation_deg_mean": float(self.rotation_degrees.mean()),
                "rotation_deg_max": float(self.rotation_degrees.max()),
                "position_mean": float(self.position.mean()), "position_max": float(self.position.max()),
                "position_max_percent": float(100.0 * self.position.max() / scene_size)}


def umeyama(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The similarity (scale, rotation (3, 3), translation (3,)) minimizing the squared distances
    |scale * rotation @ source_i + translation - target_i|^2 over points (N, 3) (Umeyama, 1991)."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    centred_source, centred_target = source - source_mean, target - target_mean
    u, singular, vt = np.linalg.svd(centred_target.T @ centred_source / len(source))
    reflection = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ reflection @ vt
    scale = float(np.trace(np.diag(singular) @ reflection) / (centred_source ** 2).sum(axis=1).mean())
    return scale, rotation, target_mean - scale * rotation @ source_mean


def _centres_and_axis_tips(c2w: np.ndarray) -> np.ndarray:
    centres = c2w[:, :3, 3]
    length = np.sqrt(((centres - centres.mean(axis=0)) ** 2).sum(axis=1).mean())
    return np.concatenate([centres] + [centres + length * c2w[:, :3, axis] for axis in range(3)])


def pose_errors(recovered: np.ndarray, true: np.ndarray) -> PoseErrors:
    """Errors of camera-to-world poses `recovered` (N, 3 or 4, 4) against `true` (same cameras, same
    order, same axis convention) after aligning the recovered ones to the true ones."""
    scale, rotation, translation = umeyama(_centres_and_axis_tips(recovered), _centres_and_axis_tips(true))
    centres = scale * recovered[:, :3, 3] @ rotation.T + translation
    turned = rotation @ recovered[:, :3, :3]
    cosine = (np.einsum("nij,nij->n", turned, true[:, :3, :3]) - 1.0) / 2.0  # trace(turned^T true)
    return PoseErrors(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))),
                      np.linalg.norm(centres - true[:, :3, 3], axis=-1))
