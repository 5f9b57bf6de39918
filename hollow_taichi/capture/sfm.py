"""Camera poses by structure from motion with COLMAP, through pycolmap (the `process` extra).

SIFT features, matching (sequential for the frames of a video, exhaustive for a small unordered set
of photos), incremental mapping with one shared OPENCV camera (fx fy cx cy k1 k2 p1 p2), on the CPU.
The principal point stays at the image centre, COLMAP's default: measured on the room (BENCHMARKS.md,
"Your own captures"), freeing it let it drift 10 pixels, away from the truth, since a shift of the
principal point and the tangential terms p1 p2 explain the same image motion.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from ..errors import CaptureError

MATCHERS = ("auto", "sequential", "exhaustive")
# auto: a folder of at most this many photos is matched exhaustively (every pair: n^2 / 2 pairs), a
# larger one and a video's frames sequentially (each frame with its neighbours in file-name order, the
# capture order of a phone): 64 frames of 480x360 took 208 s exhaustively, 23 s sequentially on 2 cores
EXHAUSTIVE_MAX_IMAGES = 32
# Exhaustive matching pairs far-apart frames whose repeated textures (bricks, tiles) fake a geometry;
# with COLMAP's 15 inliers a verified pair, the room's 32 frames at 240x180 had a frame posed 7-11 deg
# wrong in 2 of 6 mapping seeds, with 50 in none of 6 (sequential matching: none of 6 with 15).
EXHAUSTIVE_MIN_INLIERS = 50
MIN_REGISTERED = 3
INSTALL_HINT = "pip install 'hollow-taichi[process]'"


def require_pycolmap():
    """The pycolmap module, or one line saying how to install it."""
    try:
        import pycolmap
    except ImportError:
        raise CaptureError(f"process needs pycolmap (COLMAP for Python): {INSTALL_HINT}") from None
    return pycolmap


def choose_matcher(matcher: str, image_count: int, from_video: bool) -> str:
    """The matcher `auto` stands for: sequential for a video or many photos, exhaustive for a few photos."""
    if matcher != "auto":
        return matcher
    return "sequential" if from_video or image_count > EXHAUSTIVE_MAX_IMAGES else "exhaustive"


@contextmanager
def stage(name: str, say: Callable[[str], None]):
    """Say when a stage of processing finished and how long it took."""
    started = time.perf_counter()
    yield
    say(f"{name}: {time.perf_counter() - started:.1f} s")


def quiet_colmap(pycolmap, verbose: bool) -> None:
    """COLMAP logs every step of its work to stderr; keep only its errors unless asked for all."""
    pycolmap.logging.minloglevel = pycolmap.logging.Level.INFO if verbose else pycolmap.logging.Level.ERROR


def what_to_try(matcher: str) -> str:
    """The advice for a capture COLMAP could not (or only partly) pose."""
    return "try more overlap between neighbouring frames, more frames" + (
        ", or --matcher exhaustive" if matcher == "sequential" else "")


def reconstruct(source: Path, images: Path, names: list[str], work: Path, matcher: str, say: Callable[[str], None],
                on_registered: Callable[[int], None] = lambda registered: None, seed: int = 0):
    """Run features, matching and incremental mapping on `names` (files in folder `images`, taken
    from the user's `source`); the database and the models go into folder `work` (work/database.db,
    work/sparse/<k>/).

    Returns the largest model COLMAP made (pycolmap.Reconstruction); `on_registered` is called with
    the number of registrations so far while mapping. No model is an error saying what to try.
    """
    pycolmap = require_pycolmap()
    work.mkdir(parents=True, exist_ok=True)
    database = work / "database.db"
    database.unlink(missing_ok=True)
    pycolmap.set_random_seed(seed)
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "OPENCV"
    with stage(f"features ({len(names)} images)", say):
        pycolmap.extract_features(database, images, image_names=names, camera_mode=pycolmap.CameraMode.SINGLE,
                                  reader_options=reader, device=pycolmap.Device.cpu)
    with stage(f"matching ({matcher})", say):
        if matcher == "sequential":
            pycolmap.match_sequential(database, device=pycolmap.Device.cpu)
        else:
            verification = pycolmap.TwoViewGeometryOptions()
            verification.min_num_inliers = EXHAUSTIVE_MIN_INLIERS
            pycolmap.match_exhaustive(database, verification_options=verification, device=pycolmap.Device.cpu)
    options = pycolmap.IncrementalPipelineOptions()
    options.random_seed = seed
    registered = itertools.count(1)
    with stage("mapping", say):
        models = pycolmap.incremental_mapping(database, images, work / "sparse", options,
                                              next_image_callback=lambda: on_registered(next(registered)))
    if not models:
        raise CaptureError(f"{source}: COLMAP found no model in these {len(names)} frames; {what_to_try(matcher)}")
    if len(models) > 1:
        say(f"COLMAP made {len(models)} separate models; keeping the largest")
    return max(models.values(), key=lambda model: model.num_reg_images())


def read_model(folder: Path):
    """An existing COLMAP model (cameras, images, points3D; .bin or .txt) in `folder`, or in its
    sparse/0 or 0/ as COLMAP's own layout has it."""
    pycolmap = require_pycolmap()
    for candidate in (folder, folder / "sparse" / "0", folder / "0"):
        if any((candidate / f"cameras.{suffix}").is_file() for suffix in ("bin", "txt")):
            try:
                return pycolmap.Reconstruction(candidate)
            except (ValueError, RuntimeError) as error:
                raise CaptureError(f"{candidate}: not a readable COLMAP model ({error})".replace("\n", " ")) from None
    raise CaptureError(f"{folder}: no COLMAP model here (cameras, images and points3D .bin or .txt, "
                       "in this folder or in its sparse/0)")
