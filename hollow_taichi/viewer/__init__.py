"""The browser viewer (`hollow-taichi view`, `train --viewer`), built on viser.

viser serves the page and reports each browser's camera; we render that camera with our renderer
and send the frame back as the page's background image. viser runs its web server in threads of
its own; every render, and everything else that reads the model, runs on the thread that calls
`poll` (the main thread: `serve` in `view`, between training steps in `train --viewer`). viser's
callbacks only record what a browser asked for, so the server never waits on a render and Taichi
is only ever called from one thread.

Progressive rendering: while a camera moves, frames are rendered small enough to take about
LOW_FRAME_SECONDS (the size follows the rays per second measured on earlier frames); once it has
been still for STILL_SECONDS, the view is rendered again with REFINE_FACTOR times the pixels each
time, up to the canvas size (at most "Max resolution" on its longer side), so a slow CPU shows a
sharper picture every few seconds instead of nothing until the full one. A refining render is
abandoned between chunks of rays when the camera moves.
"""
from __future__ import annotations

import errno
import io
import socket
import sys
import threading
import time
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import frames
from ..errors import ViewerError
from ..images import write_png
from ..config import VIEWER_MAX_SIDE, VIEWER_MAX_SIDE_RANGE
from ..renderer import Renderer
from ..scenes import Cameras
from ..scenes.cameras import SCENE_CENTRE
from .camera import BrowserCamera, opencv_pose, start_view, to_cameras, vertical_fov

INSTALL_HINT = 'the viewer needs viser: pip install "hollow-taichi[viewer]" (in a checkout: pip install ".[viewer]")'
LOW_FRAME_SECONDS = 0.1  # a frame while the camera moves: about 10 per second
STILL_SECONDS = 0.25  # no camera message for this long: the camera is still, refine
REFINE_FACTOR = 4.0  # each refining frame has this many times the pixels of the last
MIN_LOW_PIXELS = 64 * 48
FIRST_RAYS_PER_SECOND = 50_000.0  # a guess for the first frame's size, replaced by measurement
RATE_MEMORY = 0.5  # weight of the newest frame in the rays-per-second average
IDLE_WAIT_SECONDS = 0.05
TRAINING_RENDER_SHARE = 0.08  # train --viewer: rendering takes at most this share of wall time
CLOUD_REFRESH_SECONDS = 10.0  # train --viewer: visible point clouds follow the model this often
FRUSTUM_SCALE = 0.06  # a training camera's frustum, as a fraction of the cameras' distance to the centre


def import_viser():
    """The viser module, or a ViewerError saying how to install it."""
    try:
        import viser
    except ImportError:
        raise ViewerError(INSTALL_HINT) from None
    return viser


def check_can_serve(host: str, port: int) -> None:
    """ViewerError unless viser is installed and a server can listen on host:port."""
    import_viser()
    check_port_free(host, port)


def check_port_free(host: str, port: int) -> None:
    """ViewerError unless a server can listen on host:port (viser would quietly take the next free
    port instead, and the user's URL would show nothing)."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise ViewerError(f"--host {host}: cannot resolve it ({error.strerror})") from None
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ViewerError(f"port {port} on {host} is in use: choose another with --port") from None
            raise ViewerError(f"cannot listen on {host}:{port} ({error.strerror or error})") from None


@dataclass
class ClientView:
    """What one browser asked for and what it was last sent.

    version goes up with every camera message and every change of a setting that alters the frame;
    the last frame sent showed `shown_version` with `shown_pixels` pixels (`shown_full`: the full
    size) of the model at `shown_model` (the training step it was rendered at).
    """

    handle: object  # viser.ClientHandle
    status: object  # viser GUI markdown handle: frame rate and size
    camera: BrowserCamera | None = None
    version: int = 0
    moved_at: float = 0.0
    shown_version: int = -1
    shown_pixels: int = 0
    shown_full: bool = False
    shown_model: int = -1


@dataclass
class Settings:
    """The page's shared controls, as last set."""

    mode: str = "colour"
    max_side: int = VIEWER_MAX_SIDE
    kept_cells: bool = False
    occupied_cells: bool = False
    clouds_dirty: bool = True
    save_requests: list[int] = field(default_factory=list)  # client ids


def low_frame_pixels(rays_per_second: float) -> float:
    """Pixels of a frame drawn while the camera moves: what renders in LOW_FRAME_SECONDS."""
    return max(MIN_LOW_PIXELS, rays_per_second * LOW_FRAME_SECONDS)


def next_frame(view: ClientView, now: float, model_version: int) -> str | None:
    """Which frame a browser needs next: "low" after its camera moved (or a setting changed);
    "refine" once it has been still STILL_SECONDS and its frame is not full size yet; "full" when
    the model changed (training) under a full-size frame; None when its frame is current."""
    if view.camera is None:
        return None
    if view.shown_version != view.version:
        return "low"
    if not view.shown_full:
        return "refine" if now - view.moved_at >= STILL_SECONDS else None
    return "full" if view.shown_model != model_version else None


class Viewer:
    """A viser server that shows a renderer's model to browsers; call `poll` to render."""

    def __init__(self, renderer: Renderer, save_dir: Path, start: Cameras | None, training_cameras: Cameras | None,
                 prune_threshold: float, host: str, port: int, max_side: int = VIEWER_MAX_SIDE):
        """The port is checked by the caller before its slow work (check_can_serve); one taken since
        is caught below, as viser's server starts."""
        viser = import_viser()
        self.renderer = renderer
        self.save_dir = Path(save_dir)
        self.prune_threshold = prune_threshold
        self.modes = frames.available_modes(renderer)
        self.settings = Settings(max_side=max_side)
        self.model_version = 0
        self.rays_per_second = FIRST_RAYS_PER_SECOND
        self.views: dict[int, ClientView] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.clouds_built_at = -float("inf")
        with redirect_stdout(io.StringIO()):  # viser prints a banner of its own; the caller prints one line
            self.server = viser.ViserServer(host=host, port=port, label="hollow-taichi", verbose=False)
        if self.server.get_port() != port:  # taken between the check and the start
            self.close()
            raise ViewerError(f"port {port} on {host} is in use: choose another with --port")
        self.server.gui.configure_theme(show_share_button=False)  # sharing would tunnel through viser's servers
        self.url = f"http://{host}:{port}"
        self._set_start_view(start)
        self.frustums = self._add_frustums(training_cameras)
        self._add_controls()
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(self._disconnect)

    # --- set-up --------------------------------------------------------------------------------

    def _set_start_view(self, cameras: Cameras | None) -> None:
        """Browsers start at camera 0 of `cameras` (the first test camera), the scene's up direction
        theirs; without cameras, viser's default view."""
        if cameras is None or len(cameras) == 0:
            return
        view = start_view(cameras, 0)
        self.server.scene.set_up_direction(cameras.up())
        initial = self.server.initial_camera
        initial.position = view.position
        initial.look_at = view.look_at
        initial.up = view.up
        initial.fov = view.fov

    def _add_frustums(self, cameras: Cameras | None):
        """The training cameras as frustums under one (hidden) node; None without cameras."""
        if cameras is None or len(cameras) == 0:
            return None
        node = self.server.scene.add_frame("/training_cameras", show_axes=False, visible=False)
        centre = np.array(SCENE_CENTRE)
        c2w = cameras.c2w.double().cpu().numpy()
        scale = FRUSTUM_SCALE * float(np.median(np.linalg.norm(c2w[:, :, 3] - centre, axis=-1)))
        for index in range(len(cameras)):
            wxyz, position = opencv_pose(c2w[index])
            self.server.scene.add_camera_frustum(
                f"/training_cameras/{index}", fov=vertical_fov(cameras, index), aspect=cameras.width / cameras.height,
                scale=scale, thickness=scale * 0.03, color=(60, 110, 200), wxyz=wxyz, position=position)
        return node

    def _add_controls(self) -> None:
        gui = self.server.gui
        mode = gui.add_dropdown("Render mode", self.modes, initial_value=self.settings.mode,
                                hint="colour; depth (turbo: near blue, far red); opacity; saliency p of what "
                                     "each ray sees (viridis: 0 purple, 1 yellow)")
        max_side = gui.add_slider("Max resolution", min=VIEWER_MAX_SIDE_RANGE[0], max=VIEWER_MAX_SIDE_RANGE[1], step=16,
                                  initial_value=self.settings.max_side,
                                  hint="Longer side of the full-size frame, in pixels.")
        kept = gui.add_checkbox("Kept saliency cells", initial_value=False, disabled=not self.renderer.field.hollow,
                                hint="The saliency cells the model keeps, as points coloured by p (hollow models).")
        occupied = gui.add_checkbox("Occupied cells", initial_value=False,
                                    hint="The occupancy grid's occupied cells (finest cascade), in orange.")
        frustums = gui.add_checkbox("Training cameras", initial_value=False, disabled=self.frustums is None,
                                    hint="The training cameras as frustums.")
        save = gui.add_button("Save PNG", hint=f"Write the current view, full size, into {self.save_dir}.")

        @mode.on_update
        def _(_) -> None:
            self._change(mode=mode.value)

        @max_side.on_update
        def _(_) -> None:
            self._change(max_side=int(max_side.value))

        @kept.on_update
        def _(_) -> None:
            self._change(kept_cells=kept.value, clouds_dirty=True, restart=False)

        @occupied.on_update
        def _(_) -> None:
            self._change(occupied_cells=occupied.value, clouds_dirty=True, restart=False)

        @frustums.on_update
        def _(_) -> None:
            if self.frustums is not None:
                self.frustums.visible = frustums.value

        @save.on_click
        def _(event) -> None:
            with self.lock:
                self.settings.save_requests.append(event.client_id)
            self.wake.set()

    def _change(self, restart: bool = True, **settings) -> None:
        """Record changed settings; `restart`: every browser's frame is stale (rendered anew, small first)."""
        with self.lock:
            for name, value in settings.items():
                setattr(self.settings, name, value)
            if restart:
                for view in self.views.values():
                    view.version += 1
        self.wake.set()

    def _connect(self, client) -> None:
        status = client.gui.add_markdown("waiting for the first frame", order=-1.0)
        view = ClientView(client, status)
        with self.lock:
            self.views[client.client_id] = view

        @client.camera.on_update
        def _(camera) -> None:
            if camera.image_width < 1 or camera.image_height < 1:  # a hidden or collapsed canvas: nothing to show
                return
            with self.lock:
                view.camera = BrowserCamera(np.array(camera.wxyz), np.array(camera.position), float(camera.fov),
                                            int(camera.image_width), int(camera.image_height))
                view.version += 1
                view.moved_at = time.monotonic()
            self.wake.set()

    def _disconnect(self, client) -> None:
        with self.lock:
            self.views.pop(client.client_id, None)

    # --- rendering -----------------------------------------------------------------------------

    def poll(self) -> float:
        """Do the most pressing piece of work (a save, the point clouds, one browser's next frame);
        returns the seconds it took, 0 when there was nothing to do."""
        started = time.perf_counter()
        if self._save_next() or self._refresh_clouds() or self._render_next():
            return time.perf_counter() - started
        return 0.0

    def _save_next(self) -> bool:
        with self.lock:
            if not self.settings.save_requests:
                return False
            view = self.views.get(self.settings.save_requests.pop(0))
            camera, mode = (view.camera if view else None), self.settings.mode
        if camera is None:
            return True
        frame = frames.render_frame(self.renderer, to_cameras(camera, *self._full_size(camera)), mode)
        path = self._free_name(mode)
        write_png(path, frame.image)
        print(f"viewer: saved {path}", file=sys.stderr)
        view.handle.add_notification("Saved", str(path), auto_close_seconds=5.0)
        return True

    def _free_name(self, mode: str) -> Path:
        """save_dir/view_NNN_MODE.png with the first NNN not taken."""
        self.save_dir.mkdir(parents=True, exist_ok=True)
        number = 0
        while (path := self.save_dir / f"view_{number:03d}_{mode}.png").exists():
            number += 1
        return path

    def _refresh_clouds(self) -> bool:
        """Rebuild the point clouds after a toggle, and (training) every CLOUD_REFRESH_SECONDS while shown."""
        with self.lock:
            settings = self.settings
            shown = settings.kept_cells or settings.occupied_cells
            stale = time.monotonic() - self.clouds_built_at >= CLOUD_REFRESH_SECONDS and self.model_version > 0
            if not (settings.clouds_dirty or (shown and stale)):
                return False
            settings.clouds_dirty = False
            kept, occupied = settings.kept_cells, settings.occupied_cells
        self._show_cloud("/kept_saliency_cells", kept,
                         lambda: frames.kept_cell_cloud(self.renderer.field, self.prune_threshold))
        self._show_cloud("/occupied_cells", occupied, lambda: frames.occupied_cell_cloud(self.renderer.occupancy))
        self.clouds_built_at = time.monotonic()
        return True

    def _show_cloud(self, name: str, visible: bool, build) -> None:
        if not visible:
            self.server.scene.remove_by_name(name)
            return
        cloud = build()
        if cloud is not None:
            self.server.scene.add_point_cloud(name, cloud.points, cloud.colors, point_size=cloud.cell_size,
                                              point_shape="square", precision="float32")

    def _full_size(self, camera: BrowserCamera) -> tuple[int, int]:
        return frames.fit_size(camera.width, camera.height, float("inf"), self.settings.max_side)

    def _size(self, camera: BrowserCamera, kind: str, shown_pixels: int) -> tuple[int, int]:
        """The frame size of a kind of frame: "low" by the measured speed, "refine" REFINE_FACTOR times
        the pixels shown, "full" the canvas (at most max_side on its longer side)."""
        if kind == "full":
            return self._full_size(camera)
        pixels = low_frame_pixels(self.rays_per_second)
        if kind == "refine":
            pixels = max(pixels, REFINE_FACTOR * shown_pixels)
        return frames.fit_size(camera.width, camera.height, pixels, self.settings.max_side)

    def _render_next(self) -> bool:
        """Render and send the next frame of the browser that has waited longest; False if none needs one."""
        now = time.monotonic()
        with self.lock:
            pending = [(view, kind) for view in self.views.values()
                       if (kind := next_frame(view, now, self.model_version)) is not None]
            if not pending:
                return False
            view, kind = min(pending, key=lambda item: item[0].moved_at)
            camera, version, model, mode = view.camera, view.version, self.model_version, self.settings.mode
        size = self._size(camera, kind, view.shown_pixels)
        full = size == self._full_size(camera)

        def cancelled() -> bool:
            """A low frame is short and always shown; a larger one stops when the camera moves or the browser leaves."""
            return kind != "low" and (view.version != version or view.handle.client_id not in self.views)

        frame = frames.render_frame(self.renderer, to_cameras(camera, *size), mode, cancelled)
        if frame is None:
            return True
        self.rays_per_second += RATE_MEMORY * (frame.rays / max(frame.seconds, 1e-6) - self.rays_per_second)
        self._send(view, frame, "full" if full else "moving" if kind == "low" else "refining", mode)
        with self.lock:
            view.shown_version, view.shown_pixels, view.shown_full, view.shown_model = version, frame.rays, full, model
        return True

    def _send(self, view: ClientView, frame: frames.Frame, stage: str, mode: str) -> None:
        """The frame as the browser's background (JPEG), and its rate, size and stage in the status line."""
        height, width = frame.image.shape[:2]
        view.handle.scene.set_background_image(frame.image, format="jpeg", jpeg_quality=60 if stage == "moving" else 90)
        step = f" · step {self.model_version}" if self.model_version else ""
        view.status.content = f"**{1.0 / max(frame.seconds, 1e-6):.1f} fps** · {width}×{height} ({stage}) · {mode}{step}"

    # --- loops ---------------------------------------------------------------------------------

    def serve(self) -> None:
        """Render what browsers ask for until interrupted (Ctrl-C: KeyboardInterrupt)."""
        while True:
            if not self.poll():
                self.wake.wait(IDLE_WAIT_SECONDS)
                self.wake.clear()

    def close(self) -> None:
        with redirect_stdout(io.StringIO()):  # viser's "Server stopped"
            self.server.stop()


class TrainingViewer:
    """train --viewer: the viewer on a Trainer's model, rendering between steps so that rendering
    takes at most TRAINING_RENDER_SHARE of the wall time (after a render of r seconds, the next
    waits r * (1 / share - 1))."""

    def __init__(self, viewer: Viewer):
        self.viewer = viewer
        self.next_render_at = 0.0

    def __call__(self, step: int) -> None:
        self.viewer.model_version = step
        if time.perf_counter() < self.next_render_at:
            return
        spent = self.viewer.poll()
        self.next_render_at = time.perf_counter() + spent * (1.0 / TRAINING_RENDER_SHARE - 1.0)


# --- entry points --------------------------------------------------------------------------------


def _scene_cameras(run, scene_path: str | None) -> tuple[Cameras | None, Cameras | None]:
    """The (test, train) cameras of the run's scene, or (None, None) with a note when the scene cannot
    be loaded (a compact model moved away from its scene): the page then starts at viser's view."""
    from ..errors import SceneError
    from ..runs import scene_for

    try:
        scene = scene_for(run, scene_path)
    except SceneError as error:
        print(f"note: no start view or training cameras: {error}", file=sys.stderr)
        return None, None
    return scene.test.cameras, scene.train.cameras


def view_model(path: Path, host: str, port: int, arch: str | None, scene_path: str | None, max_side: int) -> None:
    """`hollow-taichi view`: serve a run folder or compact model until Ctrl-C; saved views go into
    the run folder (or the compact model's folder)."""
    from ..runs import load_model

    check_can_serve(host, port)  # before the (slow) loading
    run = load_model(path, arch)
    test_cameras, train_cameras = _scene_cameras(run, scene_path)
    save_dir = path.parent if path.is_file() else path
    viewer = Viewer(run.renderer, save_dir, test_cameras, train_cameras, run.config.admm.prune_threshold, host, port,
                    max_side)
    print(f"viewer: {viewer.url} (Ctrl-C stops it)", file=sys.stderr, flush=True)
    try:
        viewer.serve()
    finally:
        viewer.close()


@contextmanager
def watching(trainer, host: str, port: int):
    """`train --viewer`: while the block runs, a viewer shows the trainer's model, rendered between
    its steps (TrainingViewer); views are saved into the run folder."""
    scene = trainer.scene
    viewer = Viewer(trainer.renderer, trainer.out_dir, scene.test.cameras, scene.train.cameras,
                    trainer.config.admm.prune_threshold, host, port)
    print(f"viewer: {viewer.url} (shows the model between training steps)", file=sys.stderr, flush=True)
    trainer.step_hook = TrainingViewer(viewer)
    try:
        yield viewer
    finally:
        trainer.step_hook = None
        viewer.close()
