"""Scenes: loaders for the Blender and Instant-NGP/nerfstudio layouts, cameras and rays, and the
built-in scene. Everything is returned in NGP space: OpenGL camera-to-world poses, the object
inside the unit cube [0, 1]^3, the scene box [0.5 - aabb_scale/2, 0.5 + aabb_scale/2]^3."""
from .cameras import Cameras
from .load import builtin_scene_path, load_scene, scene_path
from .scene import ImageSet, Scene, evenly_spaced

__all__ = ["Cameras", "ImageSet", "Scene", "builtin_scene_path", "evenly_spaced", "load_scene", "scene_path"]
