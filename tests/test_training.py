"""End to end: training the built-in scene (shrunk to 25x25) reaches a stated PSNR, and the CLI's
train, eval, render and info commands leave what they promise on disk."""
import json

import imageio.v2 as imageio
import pytest
from click.testing import CliRunner
from scenes_util import SMALL_RUN, tiny_scene

from hollow_taichi import checkpoint
from hollow_taichi.admm import kept_cells
from hollow_taichi.app.cli import main
from hollow_taichi.config import AdmmConfig
from hollow_taichi.images import read_image
from hollow_taichi.scenes import builtin_scene_path

DOWNSCALE = 4  # the built-in scene's 100x100 frames become 25x25
TRAIN_STEPS = 300
# Measured at these settings with one thread (docs/history/benchmarks-2026-11.md,
# issue 10's seventh sitting): hollow 20.16 /
# 21.39 dB at seeds 0 / 1, ngp 21.33 / 21.51 (an earlier build: hollow 21.93, ngp 21.97 and 21.73; with
# two threads Taichi's float atomics make runs differ by ~0.25 dB); a model whose training stalled (a
# gate gradient pinned the features) measured 11.2 dB.
MIN_TEST_PSNR = 18.0
# Measured at the end of these 300 steps: S = 0.045 (C = 0.04) and 48.6% of the saliency cells kept. The
# small dual step (1e-5, see hollow_taichi.admm) leaves the quadratic penalty ~10% of C above C this
# early; on Lego at 1000 steps S ended at 0.024. With the earlier saliency optimizer (Adam beta2 0.99,
# lr 1e-2) S was 0.17 and no cell was pruned.
SPARSITY_TOLERANCE = 0.01
MAX_KEPT_FRACTION = 0.6
METRIC_KEYS = {"psnr", "ssim", "steps", "train_seconds", "eval_seconds", "params_total", "params_effective",
               "method", "arch", "scene"}


def cli(*args: str):
    result = CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run of the built-in scene, trained once for the tests below."""
    out = tmp_path_factory.mktemp("run") / "builtin"
    cli("train", "--out", out, "--arch", "cpu", "--steps", TRAIN_STEPS, "--downscale", DOWNSCALE,
        "--hash-log2", 15, "--batch-samples", 8192, "--no-progress")
    return out


def test_training_reaches_stated_psnr_and_writes_metrics(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert METRIC_KEYS <= metrics.keys()
    assert metrics["psnr"] >= MIN_TEST_PSNR, metrics
    assert 0.5 < metrics["ssim"] <= 1.0
    assert metrics["steps"] == TRAIN_STEPS and metrics["method"] == "hollow" and metrics["arch"] == "cpu"
    assert 0 < metrics["params_effective"] <= metrics["params_total"]
    assert 0 < metrics["eval_seconds"] < metrics["wall_seconds"]  # 8 small test views take less than 300 steps
    assert metrics["scene"] == str(builtin_scene_path())


def test_pruner_meets_the_sparsity_constraint_by_the_end_of_training(run_dir):
    state = checkpoint.load(run_dir / checkpoint.CHECKPOINT_NAME)
    defaults = AdmmConfig()
    assert state["admm"]["gamma"] > 0  # the dual rose while S > C
    assert state["admm"]["sparsity"] <= defaults.sparsity + SPARSITY_TOLERANCE, state["admm"]
    kept = kept_cells(state["field"]["saliency_logits"], defaults.prune_threshold)
    assert kept.float().mean() <= MAX_KEPT_FRACTION  # the hollow is pruned, not just dimmed
    assert kept.any()


def test_training_log_records_progress_and_the_pruner(run_dir):
    records = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records] == list(range(50, TRAIN_STEPS + 1, 50))
    assert {"loss", "psnr", "samples/s", "lr", "seconds", "S", "gamma"} <= records[0].keys()
    assert records[-1]["S"] < records[0]["S"] and records[-1]["gamma"] > 0


def test_training_renders_the_test_split(run_dir):
    renders = sorted((run_dir / "renders").glob("*.png"))
    assert [path.name for path in renders] == [f"r_{index}.png" for index in range(8)]
    assert read_image(renders[0]).shape == (25, 25, 3)


def test_eval_matches_training_metrics(run_dir, tmp_path):
    out = tmp_path / "eval.json"
    cli("eval", run_dir, "--out", out)
    evaluated = json.loads(out.read_text())
    trained = json.loads((run_dir / "metrics.json").read_text())
    assert evaluated["psnr"] == pytest.approx(trained["psnr"], abs=1e-3)
    assert evaluated["split"] == "test" and evaluated["images"] == 8


def evaluated_views(metrics: dict) -> tuple[int, list[int]]:
    return metrics["test_views"], metrics["test_view_indices"]


def test_eval_views_evaluate_and_render_evenly_spaced_test_views(tmp_path):
    """24 frames hold out 0, 8 and 16 for test; 2 evenly spaced of those 3 are the 1st and 3rd."""
    run = tmp_path / "run"
    cli("train", tiny_scene(tmp_path / "scene", frames=24), "--out", run, "--steps", 1, "--eval-views", 2, *SMALL_RUN)
    assert evaluated_views(json.loads((run / "metrics.json").read_text())) == (2, [0, 2])
    assert sorted(path.name for path in (run / "renders").glob("*.png")) == ["r_0.png", "r_16.png"]

    for views, expected in ((2, (2, [0, 2])), (1, (1, [0])), (None, (3, [0, 1, 2]))):
        out = tmp_path / f"eval_{views}.json"
        cli("eval", run, "--out", out, "--no-progress", *(("--views", views) if views else ()))
        assert evaluated_views(json.loads(out.read_text())) == expected

    resumed = cli("train", "--resume", "--out", run, "--steps", 2, "--eval-views", 1, "--no-progress")
    assert "ignoring" not in resumed.output
    assert evaluated_views(json.loads((run / "metrics.json").read_text())) == (1, [0])
    assert [path.name for path in (run / "renders").glob("*.png")] == ["r_0.png"]


def test_render_orbit_writes_frames_and_video(run_dir, tmp_path):
    frames, video = tmp_path / "frames", tmp_path / "orbit.mp4"
    cli("render", run_dir, "--out", frames, "--orbit", 4, "--width", 32, "--height", 24, "--video", video)
    paths = sorted(frames.glob("frame_*.png"))
    assert len(paths) == 4
    assert read_image(paths[0]).shape == (24, 32, 3)
    assert len(imageio.mimread(video)) == 4


def test_render_split_uses_the_run_scene(run_dir, tmp_path):
    cli("render", run_dir, "--out", tmp_path / "val", "--split", "val")
    assert len(list((tmp_path / "val").glob("frame_*.png"))) == 8


def test_info_reports_the_run(run_dir):
    output = cli("info", run_dir).output
    summary = json.loads(output[output.index("{"):])
    assert summary["method"] == "hollow" and summary["step"] == TRAIN_STEPS
    assert summary["params_effective"]["total"] <= summary["params_total"]
