"""What the viewer shows, without a browser: frame sizes, the render modes, the point clouds of kept
and occupied cells, which frame a browser needs next, and train --viewer's throttle."""
import math

import numpy as np
import pytest
import torch

from hollow_taichi import ops, viewer
from hollow_taichi.viewer import frames as view_frames
from hollow_taichi import renderer as renderer_module
from hollow_taichi.occupancy import OccupancyGrid
from hollow_taichi.scenes import Cameras
from hollow_taichi.scenes.cameras import look_at
from hollow_taichi.viewer.camera import BrowserCamera

from test_compact import THRESHOLD, brute_kept_cells, dense_model, random_model, tiny_config


def box_camera(size: int = 24) -> Cameras:
    """A camera 1.5 from the unit box's centre, looking at it, square pixels, centred principal point."""
    c2w = torch.from_numpy(look_at(np.array([[0.5, -1.0, 0.9]]), np.array([0.5, 0.5, 0.5]),
                                   np.array([0.0, 0.0, 1.0]))).float()
    focal = size / 2 / math.tan(0.4)
    return Cameras(c2w, torch.tensor([[focal, focal, size / 2, size / 2]]), torch.zeros(1, 4), size, size)


@pytest.mark.parametrize("width, height, pixels, side, expected", [
    (800, 400, math.inf, 640, (640, 320)),
    (800, 400, 5000, 640, (100, 50)),
    (400, 800, math.inf, 2048, (400, 800)),
    (1000, 10, 10, 640, (31, 1)),
])
def test_fit_size_keeps_the_aspect_under_both_limits(width, height, pixels, side, expected):
    assert view_frames.fit_size(width, height, pixels, side) == expected


def test_modes_show_the_renderers_buffers(cpu):
    _, _, renderer = dense_model("hollow", seed=1)
    cameras = box_camera()
    colour = view_frames.render_frame(renderer, cameras, "colour").image
    expected = (renderer.render_view(cameras, 0).numpy() * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(colour, expected)
    buffers = view_frames.render_buffers(renderer, cameras, saliency=True)
    opacity = buffers["opacity"].numpy()
    assert (opacity > 0.9).any() and (opacity < 0.1).any()  # the box and around it: a test that can tell
    np.testing.assert_array_equal(view_frames.mode_image(buffers, "opacity")[..., 0], (opacity * 255).round())
    for mode in ("depth", "saliency"):
        image = view_frames.mode_image(buffers, mode)
        assert image.shape == (24, 24, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(image[opacity < 1e-6], np.broadcast_to(view_frames.EMPTY, image[opacity < 1e-6].shape))
        assert image[opacity > 0.9].std() > 0  # not one flat colour where the box is


def test_depth_is_blue_near_and_red_far():
    opacity = np.ones((1, 2))
    image = view_frames.depth_image(np.array([[1.0, 3.0]]), opacity)
    near, far = image[0, 0], image[0, 1]
    assert near[2] > near[0] and far[0] > far[2]


def test_an_ngp_model_has_no_saliency_mode(cpu):
    _, _, renderer = random_model(tiny_config("ngp"))
    assert view_frames.available_modes(renderer) == ("colour", "depth", "opacity")
    assert view_frames.kept_cell_cloud(renderer.field, THRESHOLD) is None


def test_a_cancelled_render_stops(cpu, monkeypatch):
    monkeypatch.setattr(renderer_module, "_INFERENCE_RAYS", 4096)
    _, _, renderer = random_model(tiny_config("hollow"))
    chunks = []

    def cancelled():
        chunks.append(1)
        return len(chunks) > 1

    assert view_frames.render_frame(renderer, box_camera(96), "colour", cancelled) is None  # 9216 rays: 3 chunks
    assert len(chunks) == 2


def test_kept_cell_cloud_matches_brute_force(cpu):
    field, _, _ = random_model(tiny_config("hollow"), seed=4)
    logits = field.saliency_logits.detach().numpy()
    kept = brute_kept_cells(logits, THRESHOLD)
    assert 0 < kept.sum() < kept.size
    cloud = view_frames.kept_cell_cloud(field, THRESHOLD)
    cells = kept.shape[0]
    expected = (np.argwhere(kept) + 0.5) / cells  # the unit box: random_model's scene box
    np.testing.assert_allclose(cloud.points, expected, atol=1e-6)
    assert cloud.cell_size == pytest.approx(1 / cells)
    assert cloud.colors.shape == (len(expected), 3)


def test_kept_cell_cloud_is_thinned_to_the_limit(cpu):
    field, _, _ = random_model(tiny_config("hollow"), seed=4)
    with torch.no_grad():
        field.saliency_logits.fill_(5.0)
    assert len(view_frames.kept_cell_cloud(field, THRESHOLD, limit=10).points) == 10


def test_occupied_cell_cloud_is_at_the_occupied_cells_centres(cpu):
    occupancy = OccupancyGrid(cascades=2, resolution=16)
    cells = torch.tensor([0, 7, 8, 300, 16**3 - 1])
    bits = torch.zeros(occupancy.n_cells)
    bits[cells] = 1.0
    bits[16**3 + 5] = 1.0  # a cell of the outer cascade: not shown
    ops.occupancy_pack_bits(bits, occupancy.bitfield, 0.5)
    cloud = view_frames.occupied_cell_cloud(occupancy)
    expected = ops.occupancy_cell_points(cells, torch.full((len(cells), 3), 0.5), occupancy.resolution)
    np.testing.assert_allclose(cloud.points, expected.numpy(), atol=1e-6)


def client(version=1, shown_version=1, shown_full=False, moved_at=0.0, shown_model=0):
    camera = BrowserCamera(np.array([1.0, 0, 0, 0]), np.zeros(3), 1.0, 100, 50)
    return viewer.ClientView(None, None, camera, version, moved_at, shown_version, 0, shown_full, shown_model)


def test_next_frame_is_low_while_moving_then_refines_when_still():
    still = viewer.STILL_SECONDS
    assert viewer.next_frame(client(version=2), 0.0, 0) == "low"
    assert viewer.next_frame(client(), still / 2, 0) is None  # just moved: wait
    assert viewer.next_frame(client(), still, 0) == "refine"
    assert viewer.next_frame(client(shown_full=True), still, 0) is None
    assert viewer.next_frame(client(shown_full=True), still, 1) == "full"  # training changed the model
    assert viewer.next_frame(viewer.ClientView(None, None), 10.0, 0) is None  # no camera reported yet


def test_training_viewer_renders_at_most_its_share_of_the_time(monkeypatch):
    class Clock:
        now = 0.0

    class FakeViewer:
        model_version = 0
        polls = 0

        def poll(self):
            self.polls += 1
            Clock.now += 0.1  # a render of 0.1 s
            return 0.1

    monkeypatch.setattr(viewer.time, "perf_counter", lambda: Clock.now)
    fake = FakeViewer()
    hook = viewer.TrainingViewer(fake)
    for step in range(1, 1001):
        hook(step)
        Clock.now += 0.01  # a training step of 10 ms
    render_share = fake.polls * 0.1 / Clock.now
    assert fake.model_version == 1000
    one_render = 0.1 / Clock.now  # the last render may end the interval: the bound holds up to one render
    assert viewer.TRAINING_RENDER_SHARE * 0.8 < render_share <= viewer.TRAINING_RENDER_SHARE + one_render
