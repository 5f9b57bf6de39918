"""Effective parameters against a brute-force count, compact model round trips, and the CLI's
export / info / render / eval on a compact model."""
import json
import math

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from hollow_taichi import backend, checkpoint, compact, runs
from hollow_taichi.app.cli import main
from hollow_taichi.config import Coding, FieldConfig, TrainConfig
from hollow_taichi.kernels.hash_grid import PRIME_Y, PRIME_Z
from hollow_taichi.metrics import psnr
from hollow_taichi.scenes.cameras import look_at
from hollow_taichi.trainer import build_model

UNIT_BOX = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
THRESHOLD = 0.01


def tiny_config(method: str = "hollow") -> TrainConfig:
    """4 levels (resolutions 2, 5, 14, 39) over a 2^10 table: two dense levels, two hashed; saliency 5^3."""
    config = TrainConfig(method=method, occupancy_resolution=16, march_steps=256)
    config.field = FieldConfig(levels=4, log2_table=10, base_resolution=2, finest_resolution=40, hidden=16,
                               saliency_resolution=5)
    config.admm.prune_threshold = THRESHOLD
    return config


def random_model(config: TrainConfig, seed: int = 0):
    """Field, occupancy and renderer with random table, logits (about a third of the cells kept),
    occupancy bits, and the MLPs' random initialisation."""
    generator = torch.Generator().manual_seed(seed)
    field, occupancy, renderer = build_model(config, UNIT_BOX, 1, generator)
    with torch.no_grad():
        field.table.write(torch.rand(field.table.shape, generator=generator) * 2 - 1)
        if field.hollow:
            field.saliency_logits.copy_(torch.randn(field.saliency_logits.shape, generator=generator) * 2 - 8)
    bits = torch.randint(0, 256, occupancy.bitfield.shape, generator=generator, dtype=torch.uint8)
    bits[: bits.shape[0] // 2] = 255
    occupancy.bitfield = bits.to(occupancy.bitfield.device)
    return field, occupancy, renderer


def dense_model(method: str, seed: int):
    """random_model, dense enough that the light of most rays through the box runs out inside it."""
    field, occupancy, renderer = random_model(tiny_config(method), seed=seed)
    with torch.no_grad():
        field.density_mlp[-1].bias[0] += 4.0
    return field, occupancy, renderer


# --- brute force: numpy, one vertex at a time ----------------------------------------------------


def brute_kept_cells(logits: np.ndarray, threshold: float) -> np.ndarray:
    cells = logits.shape[0] - 1
    kept = np.zeros((cells,) * 3, dtype=bool)
    for i, j, k in np.ndindex(kept.shape):
        corners = logits[i:i + 2, j:j + 2, k:k + 2]
        kept[i, j, k] = (1.0 / (1.0 + np.exp(-corners))).max() >= threshold
    return kept


def brute_corner_logits(kept: np.ndarray) -> int:
    corners = set()
    for i, j, k in zip(*np.nonzero(kept)):
        corners.update((i + a, j + b, k + c) for a in (0, 1) for b in (0, 1) for c in (0, 1))
    return len(corners)


def brute_rows(kept: np.ndarray, resolution: int, table_size: int) -> int:
    """Distinct rows of the vertices of level cells whose closed box meets a kept saliency cell."""
    cells = kept.shape[0]
    axis = np.arange(resolution)[:, None], np.arange(cells)[None, :]
    # meets[c, s]: [c, c+1] / resolution and [s, s+1] / cells overlap (exact integer arithmetic)
    meets = ((axis[0] * cells <= (axis[1] + 1) * resolution) & ((axis[0] + 1) * cells >= axis[1] * resolution))
    touched = np.einsum("as,bt,cu,stu->abc", meets.astype(int), meets.astype(int), meets.astype(int),
                        kept.astype(int)) > 0
    rows = set()
    dense = (resolution + 1) ** 3 <= table_size
    for x, y, z in zip(*np.nonzero(touched)):
        for vx, vy, vz in ((x + a, y + b, z + c) for a in (0, 1) for b in (0, 1) for c in (0, 1)):
            if dense:
                rows.add(vx + (resolution + 1) * (vy + (resolution + 1) * vz))
            else:
                rows.add((vx ^ (vy * PRIME_Y) ^ (vz * PRIME_Z)) & (table_size - 1))
    return len(rows)


def test_effective_parameters_match_brute_force(arch):
    config = tiny_config()
    field, _, _ = random_model(config)
    logits = field.saliency_logits.detach().cpu().double().numpy()
    kept = brute_kept_cells(logits, THRESHOLD)
    assert 0 < kept.sum() < kept.size / 2
    table_size = field.table.shape[1]
    rows = [brute_rows(kept, resolution, table_size) for resolution in field.encoder.resolutions]
    assert rows[1] < 6**3 and rows[2] < table_size  # a dense and a hashed level drop rows

    effective = compact.effective_parameters(field, THRESHOLD)

    assert torch.equal(compact.kept_cells(field.saliency_logits, THRESHOLD).cpu(), torch.from_numpy(kept))
    assert [int(level.sum()) for level in compact.referenced_rows(field, THRESHOLD)] == rows
    assert effective.saliency == brute_corner_logits(kept)
    assert effective.table == sum(rows) * config.field.features_per_level
    assert effective.mlp == sum(parameter.numel() for parameter in field.mlp_parameters())
    assert effective.total == effective.mlp + effective.saliency + effective.table


def test_parameter_count_is_what_the_levels_can_address(arch):
    """Hand count for tiny_config: dense levels hold (res+1)^3 rows, hashed ones the whole table."""
    table = 2 * (3**3 + 6**3 + 1024 + 1024)  # F = 2; resolutions 2 and 5 dense, 14 and 39 hashed
    density_mlp = (8 * 16 + 16) + (16 * 16 + 16)  # 4 levels x 2 features in, 1 + 15 out
    color_mlp = (32 * 16 + 16) + (16 * 16 + 16) + (16 * 3 + 3)  # 16 geometry + 16 SH in
    mlp = density_mlp + color_mlp
    ngp, _, _ = random_model(tiny_config("ngp"))
    hollow, _, _ = random_model(tiny_config("hollow"))
    assert ngp.encoder.resolutions == [2, 5, 14, 39]
    assert ngp.parameter_count() == table + mlp == 5_849
    assert hollow.parameter_count() == table + mlp + 5**3
    assert ngp.table.numel() > table  # allocated, not addressable: never counted


def test_ngp_every_parameter_is_effective(arch):
    field, _, _ = random_model(tiny_config("ngp"))
    assert compact.effective_parameters(field, THRESHOLD).total == field.parameter_count()


def rays_through_box(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays from a sphere of radius 1.5 around the box centre towards random points inside the box,
    on the running backend's device."""
    generator = torch.Generator().manual_seed(seed)
    start = torch.nn.functional.normalize(torch.randn(n, 3, generator=generator), dim=-1) * 1.5 + 0.5
    directions = torch.nn.functional.normalize(torch.rand(n, 3, generator=generator) - start, dim=-1)
    return start.to(backend.device()), directions.to(backend.device())


@pytest.mark.parametrize("method", ["hollow", "ngp"])
def test_compact_round_trip_renders_what_the_full_model_renders(arch, device, tmp_path, method):
    config = tiny_config(method)
    field, occupancy, renderer = random_model(config, seed=1)
    generator = torch.Generator().manual_seed(2)
    points = torch.rand(4000, 3, generator=generator)
    points[:1000, 0] = torch.randint(0, 5, (1000,), generator=generator) / 4  # on saliency cell faces
    directions = torch.nn.functional.normalize(torch.randn(4000, 3, generator=generator), dim=-1)
    points, directions = points.to(device), directions.to(device)
    with torch.no_grad():
        unpruned_sigma = field.density(points)
    compact.apply_pruning(field, THRESHOLD)
    saved = compact.save(tmp_path / "model.htc", config, field, occupancy, step=7, coding=Coding.lossless())

    loaded_config, loaded, step = compact.load(tmp_path / "model.htc", arch)

    assert step == 7 and loaded_config.to_dict() == config.to_dict()
    assert saved.bytes == (tmp_path / "model.htc").stat().st_size
    assert saved.effective.total == compact.effective_parameters(loaded.field, THRESHOLD).total
    assert torch.equal(loaded.occupancy.bitfield.cpu(), occupancy.bitfield.cpu())
    with torch.no_grad():
        sigma, rgb, _ = field(points, directions)
        loaded_sigma, loaded_rgb, _ = loaded.field(points, directions)
    assert torch.equal(sigma, loaded_sigma) and torch.equal(rgb, loaded_rgb)
    assert (sigma > 0).any()
    origins, ray_directions = rays_through_box(64, seed=3)
    background = torch.ones(64, 3, device=device)
    with torch.no_grad():
        full = renderer.render_rays(origins, ray_directions, background)
        reloaded = loaded.render_rays(origins, ray_directions, background)
    assert full.n_samples == reloaded.n_samples > 0
    # Not bit-exact: the compositor sums samples with atomics, in any order.
    torch.testing.assert_close(reloaded.color, full.color, atol=1e-5, rtol=0)
    if method == "hollow":
        assert (loaded.field.table.read() == 0).any()  # rows were dropped, yet it renders the same
        pruned = ~field.kept_at(points)
        assert pruned.any() and (sigma[pruned] == 0).all() and (unpruned_sigma[pruned] > 0).any()
    else:  # every row a level can address is kept; rows past a dense level's vertices are not
        for level, rows in enumerate(field.encoder.addressable_rows()):
            loaded_table, table = loaded.field.table.read(), field.table.read()
            assert torch.equal(loaded_table[level, :rows], table[level, :rows])
            assert (loaded_table[level, rows:] == 0).all()


# --- the command line on a run made by a short training -----------------------------------------


def tiny_scene(root, frames: int = 8, size: int = 24):
    """Blender layout, train split only (frame 0 held out for test): a coloured disc in each view,
    cameras on a ring around the box."""
    eyes = np.stack([[4 * math.cos(a), 4 * math.sin(a), 1.5] for a in np.linspace(0, 2 * math.pi, frames,
                                                                                   endpoint=False)])
    poses = look_at(eyes, np.zeros(3), np.array([0.0, 0.0, 1.0]))
    yy, xx = np.mgrid[:size, :size]
    entries = []
    (root / "train").mkdir(parents=True)
    for index, pose in enumerate(poses):
        disc = ((xx - size / 2 + index % 3) ** 2 + (yy - size / 2) ** 2) < (size / 3) ** 2
        pixels = np.zeros((size, size, 4), np.uint8)
        pixels[disc] = (40 + 20 * index, 200, 90, 255)
        assert cv2.imwrite(str(root / "train" / f"r_{index}.png"), cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA))
        matrix = np.vstack([pose, [0.0, 0.0, 0.0, 1.0]]).tolist()
        entries.append({"file_path": f"./train/r_{index}", "transform_matrix": matrix})
    (root / "transforms_train.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": entries}))
    return root


def invoke(*args) -> str:
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result.output


def json_head(output: str) -> dict:
    """The JSON object a command prints before its closing line."""
    return json.loads(output[: output.rindex("}") + 1])


def prune_lower_half(run):
    """Edit the run's checkpoint: saliency logits of the lower half (z vertices 0..3 of 8) very low."""
    path = run / checkpoint.CHECKPOINT_NAME
    state = checkpoint.load(path)
    state["field"]["saliency_logits"][:, :, :4] = -10.0
    checkpoint.save(path, state)


def read_png(path) -> torch.Tensor:
    return torch.from_numpy(cv2.imread(str(path))).float() / 255.0


def test_cli_export_info_render_eval_on_compact_model(cpu, tmp_path):
    scene = tiny_scene(tmp_path / "scene")
    run, model = tmp_path / "run", tmp_path / "model.htc"
    invoke("train", scene, "--out", run, "--arch", "cpu", "--steps", 5, "--hash-log2", 12, "--batch-samples",
           4096, "--saliency-res", 8, "--no-progress")
    metrics = json.loads((run / "metrics.json").read_text())
    trained = json_head(invoke("info", run))
    assert metrics["params_effective"] == trained["params_effective"]["total"] <= metrics["params_total"]

    prune_lower_half(run)
    exported = json_head(invoke("export", run, "--out", model))
    info = json_head(invoke("info", run, "--compact", model))
    compact_info = json_head(invoke("info", model))

    assert info["params_effective"] == exported["params_effective"] == compact_info["params_effective"]
    assert info["params_effective"]["total"] < info["params_total"] == compact_info["params_total"]
    assert info["compact_bytes"] == model.stat().st_size < info["checkpoint_bytes"]
    invoke("render", run, "--out", tmp_path / "full")
    invoke("render", model, "--out", tmp_path / "compact")
    full, reloaded = (read_png(tmp_path / name / "frame_00000.png") for name in ("full", "compact"))
    assert full.shape == (24, 24, 3) and (torch.equal(full, reloaded) or psnr(full, reloaded) >= 40)
    evaluated = [json_head(invoke("eval", path, "--no-progress"))["psnr"] for path in (model, run)]
    assert evaluated[0] == pytest.approx(evaluated[1], abs=1e-3)
    assert (tmp_path / "model_eval_test.json").is_file()

    invoke("render", model, "--saliency", "--out", tmp_path / "slices")
    slices = sorted((tmp_path / "slices").glob("saliency_z*.png"))
    assert [path.name for path in slices] == [f"saliency_z{z:.3f}.png" for z in (0.1, 0.3, 0.5, 0.7, 0.9)]
    brightness = [read_png(path).amax().item() for path in slices]
    assert brightness[0] == brightness[1] == 0 and min(brightness[2:]) > 0  # z < 3/7: pruned, black


@pytest.mark.parametrize("bits", [8, 5])
def test_quantized_round_trip_keeps_the_cells_and_stays_within_half_a_step(arch, device, tmp_path, bits):
    config = tiny_config()
    field, occupancy, renderer = random_model(config, seed=4)
    compact.apply_pruning(field, THRESHOLD)
    lossless = compact.save(tmp_path / "lossless.htc", config, field, occupancy, step=3, coding=Coding.lossless())
    saved = compact.save(tmp_path / "model.htc", config, field, occupancy, step=3, coding=Coding(bits, bits))

    _, loaded, _ = compact.load(tmp_path / "model.htc", arch)

    assert saved.bytes < lossless.bytes and saved.effective == lossless.effective
    assert torch.equal(loaded.field.kept_cells.cpu(), field.kept_cells.cpu())
    table, restored = field.table.read().cpu(), loaded.field.table.read().cpu()
    levels = 2 ** (bits - 1) - 1
    for level, rows in enumerate(compact.referenced_rows(field, THRESHOLD)):
        step = table[level][rows].abs().amax(dim=0) / levels  # the largest step the clip search can choose
        error = (restored[level][rows] - table[level][rows]).abs()
        inside = table[level][rows].abs() <= restored[level][rows].abs().amax(dim=0)
        assert (error[inside] <= (step / 2).expand_as(error)[inside] * (1 + 1e-5)).all()
        assert (restored[level][~rows] == 0).all()
    origins, directions = rays_through_box(256, seed=5)
    background = torch.ones(256, 3, device=device)
    with torch.no_grad():
        full = renderer.render_rays(origins, directions, background).color.cpu()
        reloaded = loaded.render_rays(origins, directions, background).color.cpu()
    assert psnr(reloaded[None], full[None]) >= {8: 45, 5: 28}[bits]


def test_cli_refuses_a_file_that_is_not_a_compact_model(cpu, tmp_path):
    path = tmp_path / "model.htc"
    compact.container.write(path, "something else", {}, {})
    result = CliRunner().invoke(main, ["render", str(path), "--out", str(tmp_path / "frames")])
    assert result.exit_code == 1 and "not a hollow-taichi compact model" in result.output


def test_cli_asks_to_export_an_old_pickled_compact_model_again(cpu, tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"kind": compact.KIND, "format": 1, "table": torch.zeros(3)}, path)
    result = CliRunner().invoke(main, ["info", str(path)])
    assert result.exit_code == 1 and "export it again" in result.output and "Traceback" not in result.output


class CodeRunningPickle:
    """A pickle that, if loaded, creates the file `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.mark.parametrize("as_checkpoint", [False, True])
def test_a_crafted_pickle_runs_nothing(cpu, tmp_path, as_checkpoint):
    """As a compact model or as a run's checkpoint: one error line naming the file, and no code ran."""
    marker = tmp_path / "code-ran"
    payload = {"format": checkpoint.FORMAT, "kind": compact.KIND, "step": CodeRunningPickle(marker)}
    if as_checkpoint:
        scene = tiny_scene(tmp_path / "scene")
        target = tmp_path / "run"
        invoke("train", scene, "--out", target, "--arch", "cpu", "--steps", 1, "--hash-log2", 10, "--batch-samples",
               4096, "--saliency-res", 4, "--no-progress", "--eval-views", 1)
        path = target / checkpoint.CHECKPOINT_NAME
    else:
        target = path = tmp_path / "model.htc"
    for write in (lambda: torch.save(payload, path), lambda: path.write_bytes(__import__("pickle").dumps(payload))):
        write()
        for command in (["info", target], ["render", target, "--out", tmp_path / "frames"]):
            result = CliRunner().invoke(main, [str(arg) for arg in command])
            assert result.exit_code == 1, result.output
            assert result.output.startswith(f"error: {path}") and result.output.count("\n") == 1
            assert not marker.exists()


def test_quantization_aware_training_exports_exactly_the_model_it_trained(cpu, tmp_path):
    """qat_bits=3 from half the budget on: the table ends on its grid, and a 3-bit export holds the
    very values the run renders with; a 4-bit export fits a grid of its own."""
    scene = tiny_scene(tmp_path / "scene")
    run = tmp_path / "run"
    invoke("train", scene, "--out", run, "--arch", "cpu", "--steps", 8, "--hash-log2", 12, "--batch-samples", 4096,
           "--saliency-res", 8, "--no-progress", "--eval-views", 1, "--set", "qat_bits=3", "--set", "qat_start=0.5")
    trained = runs.load_run(run, "cpu")
    grid = trained.field.table_steps.cpu()
    table = trained.field.table.read().cpu()
    assert (grid > 0).all()
    codes = table / grid[:, None, :]
    assert torch.equal(codes, codes.round()) and codes.abs().max() <= 3

    for bits in (3, 4):
        model = tmp_path / f"model{bits}.htc"
        invoke("export", run, "--out", model, "--bits", bits)
        loaded = runs.load_model(model, "cpu")
        rows = torch.stack(compact.referenced_rows(trained.field, trained.config.admm.prune_threshold))
        restored = loaded.field.table.read().cpu()
        if bits == 3:
            assert torch.equal(restored[rows], table[rows])
        else:
            assert not torch.equal(restored[rows], table[rows])


def test_save_within_a_size_takes_the_most_bits_that_fit(cpu, tmp_path):
    config = tiny_config()
    field, occupancy, _ = random_model(config, seed=6)
    model = (tmp_path / "model.htc", config, field, occupancy, 0)
    sizes = {bits: compact.save(*model, Coding(table_bits=bits)).bytes for bits in range(2, 9)}
    assert all(sizes[bits] < sizes[bits + 1] for bits in range(2, 8))
    limit = (sizes[5] + sizes[6]) // 2

    saved = compact.save_within(*model, limit)

    assert saved.coding.table_bits == 5 and saved.bytes == sizes[5] == (tmp_path / "model.htc").stat().st_size
    with pytest.raises(compact.RunError, match=f"more than {sizes[2] - 1:,}"):
        compact.save_within(*model, sizes[2] - 1)
