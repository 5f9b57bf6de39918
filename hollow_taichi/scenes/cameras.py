"""Pinhole cameras with OpenCV lens distortion, and the rays they shoot.

Poses are camera-to-world 3x4 matrices in the OpenGL convention (x right, y up, the camera looks
down -z). Pixel coordinates are continuous: the centre of pixel (column i, row j) is (i + 0.5,
j + 0.5), and fx, fy, cx, cy are in those units (the Instant-NGP and COLMAP convention).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

SCENE_CENTRE = (0.5, 0.5, 0.5)
UNDISTORT_ITERATIONS = 10


def look_at(eyes: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """OpenGL camera-to-world matrices of cameras at `eyes` (N, 3) looking at `target` (3,).

    `up` (3,) is the world direction that appears upwards in the images. Returns (N, 3, 4) float64.
    """
    back = eyes - target
    back = back / np.linalg.norm(back, axis=-1, keepdims=True)
    right = np.cross(up, back)
    right = right / np.linalg.norm(right, axis=-1, keepdims=True)
    true_up = np.cross(back, right)
    return np.stack([right, true_up, back, eyes], axis=-1)


def distort(x: torch.Tensor, y: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV radial-tangential model on normalized coordinates x, y (B,); k (B, 4) = k1 k2 p1 p2."""
    k1, k2, p1, p2 = k.unbind(-1)
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * k2)
    xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    return xd, yd


def _distortion_jacobian(x: torch.Tensor, y: torch.Tensor, k: torch.Tensor):
    """Partial derivatives (dxd/dx, dxd/dy, dyd/dx, dyd/dy), each (B,), of `distort` at x, y."""
    k1, k2, p1, p2 = k.unbind(-1)
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * k2)
    radial_dr2 = k1 + 2.0 * k2 * r2
    xd_x = radial + 2.0 * x * x * radial_dr2 + 2.0 * p1 * y + 6.0 * p2 * x
    xd_y = 2.0 * x * y * radial_dr2 + 2.0 * p1 * x + 2.0 * p2 * y
    yd_x = 2.0 * x * y * radial_dr2 + 2.0 * p2 * y + 2.0 * p1 * x
    yd_y = radial + 2.0 * y * y * radial_dr2 + 6.0 * p1 * y + 2.0 * p2 * x
    return xd_x, xd_y, yd_x, yd_y


def undistort(xd: torch.Tensor, yd: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert `distort` by Newton's method (as Instant-NGP and nerfstudio do).

    xd, yd (B,) distorted normalized coordinates, k (B, 4) = k1 k2 p1 p2 -> x, y (B,) such that
    distort(x, y) = (xd, yd). Steps whose Jacobian is near singular are skipped.
    """
    x, y = xd.clone(), yd.clone()
    for _ in range(UNDISTORT_ITERATIONS):
        fx, fy = distort(x, y, k)
        fx, fy = fx - xd, fy - yd
        a, b, c, d = _distortion_jacobian(x, y, k)
        det = a * d - b * c
        usable = det.abs() > 1e-6
        safe_det = torch.where(usable, det, torch.ones_like(det))
        x = x - torch.where(usable, (d * fx - b * fy) / safe_det, torch.zeros_like(x))
        y = y - torch.where(usable, (a * fy - c * fx) / safe_det, torch.zeros_like(y))
    return x, y


@dataclass
class Cameras:
    """A set of cameras that share an image size.

    c2w (N, 3, 4) float32 camera-to-world in NGP space; intrinsics (N, 4) float32 fx, fy, cx, cy in
    pixels; distortion (N, 4) float32 OpenCV k1, k2, p1, p2 (zeros when none).
    """

    c2w: torch.Tensor
    intrinsics: torch.Tensor
    distortion: torch.Tensor
    width: int
    height: int

    def __len__(self) -> int:
        return self.c2w.shape[0]

    @property
    def distorted(self) -> bool:
        """True when some camera has a non-zero distortion coefficient."""
        return bool(self.distortion.any())

    def subset(self, indices: list[int]) -> Cameras:
        """The cameras at `indices`, in that order."""
        return Cameras(self.c2w[indices], self.intrinsics[indices], self.distortion[indices], self.width, self.height)

    def to(self, device: torch.device | str) -> Cameras:
        """The same cameras with their tensors on `device`."""
        return Cameras(self.c2w.to(device), self.intrinsics.to(device), self.distortion.to(device),
                       self.width, self.height)

    def rays(self, frame: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rays through pixel positions of frames.

        frame (B,) long camera indices; x, y (B,) float pixel coordinates (pixel centres at
        i + 0.5) -> origins (B, 3) and unit directions (B, 3) in NGP space. Lens distortion is
        undone, so a ray passes through the scene point that the lens imaged at (x, y).
        """
        fx, fy, cx, cy = self.intrinsics[frame].unbind(-1)
        u = (x - cx) / fx
        v = (y - cy) / fy
        if self.distorted:
            u, v = undistort(u, v, self.distortion[frame])
        pose = self.c2w[frame]
        local = torch.stack([u, -v, -torch.ones_like(u)], dim=-1)
        directions = (pose[:, :, :3] @ local.unsqueeze(-1)).squeeze(-1)
        directions = directions / directions.norm(dim=-1, keepdim=True)
        return pose[:, :, 3].clone(), directions

    def view_bounds(self, points_per_edge: int = 64) -> torch.Tensor:
        """(N, 4) float32: each camera's image extent in undistorted normalized coordinates, u_min,
        u_max, v_min, v_max (u = x / depth to the right, v = y / depth downwards), taken over points
        along the image border with the lens distortion undone (barrel distortion sees wider than
        the pinhole with the same intrinsics)."""
        steps = torch.linspace(0.0, 1.0, points_per_edge)
        zeros, ones = torch.zeros_like(steps), torch.ones_like(steps)
        border_x = torch.cat([steps, steps, zeros, ones]) * self.width
        border_y = torch.cat([zeros, ones, steps, steps]) * self.height
        count = border_x.shape[0]
        fx, fy, cx, cy = (value[:, None] for value in self.intrinsics.cpu().unbind(-1))
        u, v = (border_x - cx) / fx, (border_y - cy) / fy
        if self.distorted:
            k = self.distortion.cpu()[:, None, :].expand(-1, count, 4).reshape(-1, 4)
            u, v = (part.reshape(-1, count) for part in undistort(u.reshape(-1), v.reshape(-1), k))
        return torch.stack([u.min(1).values, u.max(1).values, v.min(1).values, v.max(1).values], dim=-1)

    def pixel_rays(self, frame: int, width: int | None = None,
                   height: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """All pixel-centre rays of camera `frame`, row-major: origins and directions (H*W, 3).

        width/height render the same view at another resolution (intrinsics rescaled).
        """
        width = width or self.width
        height = height or self.height
        device = self.c2w.device
        xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * (self.width / width)
        ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * (self.height / height)
        y, x = torch.meshgrid(ys, xs, indexing="ij")
        frames = torch.full((width * height,), frame, dtype=torch.long, device=device)
        return self.rays(frames, x.reshape(-1), y.reshape(-1))

    def up(self) -> np.ndarray:
        """The scene's up direction (3,) float64: the mean of the cameras' up axes, normalized."""
        up = self.c2w[:, :, 1].double().mean(dim=0).cpu().numpy()
        return up / np.linalg.norm(up)

    def orbit(self, n_frames: int, elevation_deg: float = 25.0, radius: float | None = None) -> Cameras:
        """`n_frames` undistorted cameras on a circle around the scene centre, looking at it.

        The circle lies at `elevation_deg` above the plane perpendicular to `up()`; its radius
        defaults to the mean distance of these cameras from the centre. Intrinsics of camera 0.
        """
        centre = np.array(SCENE_CENTRE)
        origins = self.c2w[:, :, 3].double().cpu().numpy()
        if radius is None:
            radius = float(np.linalg.norm(origins - centre, axis=-1).mean())
        up = self.up()
        helper = np.eye(3)[np.argmin(np.abs(up))]
        first = np.cross(up, helper)
        first /= np.linalg.norm(first)
        second = np.cross(up, first)
        angles = np.linspace(0.0, 2.0 * math.pi, n_frames, endpoint=False)[:, None]
        elevation = math.radians(elevation_deg)
        ring = np.cos(angles) * first + np.sin(angles) * second
        eyes = centre + radius * (math.cos(elevation) * ring + math.sin(elevation) * up)
        c2w = torch.from_numpy(look_at(eyes, centre, up)).float()
        intrinsics = self.intrinsics[:1].cpu().expand(n_frames, 4).clone()
        return Cameras(c2w, intrinsics, torch.zeros(n_frames, 4), self.width, self.height).to(self.c2w.device)
