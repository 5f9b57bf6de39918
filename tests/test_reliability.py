"""Runs survive crashes and bad run folders: resume equals an uninterrupted run, SIGINT/SIGTERM save a
checkpoint and say how to resume, kill -9 leaves a loadable checkpoint, divergence keeps the last
good one, and damaged or foreign checkpoints and configurations end in one `error:` line."""
import json
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from scenes_util import SMALL_RUN, count_differing, error_line, run_cli, tiny_scene, trained_alike

from hollow_taichi import checkpoint, runs
from hollow_taichi.field import HollowField
from hollow_taichi.trainer import Trainer, TrainingLog

CHECKPOINT = checkpoint.CHECKPOINT_NAME
SUBPROCESS_TIMEOUT = 180


def succeeded(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def train(scene, out, steps, *extra):
    return run_cli("train", scene, "--out", out, "--steps", steps, *SMALL_RUN, *extra)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run folder after 2 training steps on the tiny scene; copy it before changing it."""
    root = tmp_path_factory.mktemp("trained")
    run_dir = root / "run"
    succeeded(train(tiny_scene(root / "scene"), run_dir, 2))
    return run_dir


@pytest.fixture
def run_copy(trained_run, tmp_path):
    return shutil.copytree(trained_run, tmp_path / "run")


# --- resume -----------------------------------------------------------------------------------


def test_training_log_drops_what_a_resumed_run_logs_again(tmp_path):
    log = TrainingLog(tmp_path / "train_log.jsonl")
    for step in (50, 100, 150):
        log.append({"step": step, "loss": 0.1})
    with log.path.open("a") as file:
        file.write('{"step": 200, "lo')  # a record cut short by kill -9
    log.truncate_after(100)
    assert [record["step"] for record in log.records()] == [50, 100]


def test_resume_says_which_given_settings_it_ignores(run_copy):
    result = succeeded(run_cli("train", "--resume", "--out", run_copy, "--steps", 3, "--method", "ngp",
                               "--hash-log2", 14, "--set", "lr=0.5", "--no-progress"))
    assert ("note: --resume continues with the run's saved settings; ignoring --method, --hash-log2, --set"
            in result.output)
    config = json.loads((run_copy / runs.CONFIG_NAME).read_text())
    assert (config["method"], config["field"]["log2_table"], config["steps"]) == ("hollow", 12, 3)


@pytest.mark.parametrize("settings", [(), ("--set", "qat_bits=3", "--set", "qat_start=0.25")],
                         ids=["float", "quantization-aware"])
def test_resume_after_sigterm_matches_uninterrupted_run(tmp_path, monkeypatch, settings):
    """The interrupted run also saves by time after every step; the whole run saves only at the end.
    Quantization-aware training starts before the interruption: its latent table resumes too."""
    steps, stop_at = 4, 2
    scene = tiny_scene(tmp_path / "scene")
    succeeded(train(scene, tmp_path / "whole", steps, "--checkpoint-every", 0, "--checkpoint-minutes", 0, *settings))

    train_step, save_checkpoint = Trainer.train_step, Trainer.save_checkpoint
    saved_at = []

    def step_then_sigterm(trainer):
        stats = train_step(trainer)
        if trainer.step == stop_at:
            signal.raise_signal(signal.SIGTERM)
        return stats

    def counted_save(trainer):
        saved_at.append(trainer.step)
        return save_checkpoint(trainer)

    monkeypatch.setattr(Trainer, "train_step", step_then_sigterm)
    monkeypatch.setattr(Trainer, "save_checkpoint", counted_save)
    interrupted = train(scene, tmp_path / "parts", steps, "--checkpoint-every", 0, "--checkpoint-minutes", 1e-9,
                        *settings)
    assert interrupted.exit_code == 143
    assert f"interrupted by SIGTERM at step {stop_at}" in interrupted.output
    assert saved_at == [1, 2, 2]  # by time after each step, then for the signal
    monkeypatch.undo()
    succeeded(run_cli("train", "--resume", "--out", tmp_path / "parts"))

    whole, parts = (checkpoint.load(tmp_path / run / CHECKPOINT) for run in ("whole", "parts"))
    for name, tensor in whole["field"].items():
        resumed = parts["field"][name]
        assert trained_alike(resumed, tensor), (name, count_differing(resumed, tensor))
    if settings:
        assert trained_alike(parts["table_optimizer"]["latent"], whole["table_optimizer"]["latent"])
    assert torch.equal(parts["rng"]["generator"], whole["rng"]["generator"])
    assert parts["rays_per_step"] == whole["rays_per_step"]
    assert parts["admm"]["gamma"] == pytest.approx(whole["admm"]["gamma"], rel=1e-4)
    metrics = [json.loads((tmp_path / run / runs.METRICS_NAME).read_text()) for run in ("whole", "parts")]
    assert metrics[0]["steps"] == metrics[1]["steps"] == steps
    assert metrics[0]["psnr"] == pytest.approx(metrics[1]["psnr"], abs=0.01)


def start_training(scene, out_dir, checkpoints=("--checkpoint-every", "1")) -> subprocess.Popen:
    """`hollow-taichi train` in a subprocess, checkpointing as `checkpoints` say (default: after every
    step), far from finishing."""
    command = [sys.executable, "-m", "hollow_taichi.app.cli", "train", str(scene), "--out", str(out_dir),
               "--steps", "1000", *checkpoints, *SMALL_RUN]
    return subprocess.Popen(command, cwd=out_dir.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(process: subprocess.Popen, ready, seconds: float = SUBPROCESS_TIMEOUT) -> bool:
    """Poll until ready() holds (True) or `seconds` pass (False); the process must keep running."""
    deadline = time.monotonic() + seconds
    while not ready():
        assert process.poll() is None, process.communicate()
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.fixture
def training_process(tmp_path):
    """Start training on a tiny scene in a subprocess once its first checkpoint is on disk."""
    out_dir = tmp_path / "run"
    out_dir.mkdir()
    process = start_training(tiny_scene(tmp_path / "scene"), out_dir)
    try:
        assert wait_for(process, (out_dir / CHECKPOINT).is_file), "no checkpoint appeared"
        yield process, out_dir
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_sigint_saves_a_checkpoint_and_resume_continues(training_process):
    process, out_dir = training_process
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    message = stderr.strip().splitlines()[-1]
    match = re.fullmatch(r"interrupted by SIGINT at step (\d+): checkpoint saved in (.+); resume with: (.+)", message)
    assert match, message
    step = int(match.group(1))
    assert match.group(2) == str(out_dir / CHECKPOINT)
    assert match.group(3) == f"hollow-taichi train --resume --out {out_dir}"
    assert checkpoint.load(out_dir / CHECKPOINT)["step"] == step

    succeeded(run_cli("train", "--resume", "--out", out_dir, "--steps", step + 2))
    assert json.loads((out_dir / runs.METRICS_NAME).read_text())["steps"] == step + 2
    assert json.loads((out_dir / runs.CONFIG_NAME).read_text())["steps"] == step + 2


def test_sigkill_during_a_save_leaves_a_loadable_checkpoint(training_process):
    """Kill -9 as soon as a save's temporary file shows (else after a few seconds of saves)."""
    process, out_dir = training_process
    wait_for(process, lambda: any(out_dir.glob(f".{CHECKPOINT}.*.tmp")), seconds=10)
    process.kill()
    process.communicate(timeout=SUBPROCESS_TIMEOUT)
    step = checkpoint.load(out_dir / CHECKPOINT)["step"]
    assert step >= 1

    succeeded(run_cli("train", "--resume", "--out", out_dir, "--steps", step + 1))
    assert checkpoint.load(out_dir / CHECKPOINT)["step"] == step + 1
    assert not list(out_dir.glob(f".{CHECKPOINT}.*.tmp"))


def count_steps(monkeypatch) -> list[int]:
    """From now on, record the step each training step of this process ends at."""
    train_step = Trainer.train_step
    steps = []

    def counted_step(trainer):
        stats = train_step(trainer)
        steps.append(trainer.step)
        return stats

    monkeypatch.setattr(Trainer, "train_step", counted_step)
    return steps


def test_sigkill_after_a_timed_checkpoint_resumes_from_it(tmp_path, monkeypatch):
    """No step checkpoints: the first checkpoint on disk is a timed one (every 1.2 s of wall time)."""
    out_dir = tmp_path / "run"
    out_dir.mkdir()
    process = start_training(tiny_scene(tmp_path / "scene"), out_dir,
                             ("--checkpoint-every", "0", "--checkpoint-minutes", "0.02"))
    try:
        assert wait_for(process, (out_dir / CHECKPOINT).is_file), "no timed checkpoint appeared"
    finally:
        process.kill()
        process.communicate(timeout=SUBPROCESS_TIMEOUT)
    step = checkpoint.load(out_dir / CHECKPOINT)["step"]
    assert 0 < step < 1000

    resumed_steps = count_steps(monkeypatch)
    succeeded(run_cli("train", "--resume", "--out", out_dir, "--steps", step + 2))
    assert resumed_steps == [step + 1, step + 2]
    assert json.loads((out_dir / runs.METRICS_NAME).read_text())["steps"] == step + 2


# --- divergence and bad run folders -----------------------------------------------------------


def test_diverged_loss_keeps_the_last_good_checkpoint(run_copy, monkeypatch):
    forward = HollowField.forward

    def nan_colours(field, positions, directions, cached=None):
        sigma, rgb, saliency = forward(field, positions, directions, cached)
        return sigma, torch.full_like(rgb, float("nan")), saliency

    monkeypatch.setattr(HollowField, "forward", nan_colours)
    before = (run_copy / CHECKPOINT).read_bytes()
    line = error_line(run_cli("train", "--resume", "--out", run_copy, "--steps", 4))
    assert "training diverged: loss is nan at step 2" in line
    assert f"the last good checkpoint (step 2) is {run_copy / CHECKPOINT}" in line
    assert (run_copy / CHECKPOINT).read_bytes() == before


def rewrite_checkpoint(run_dir, change) -> None:
    state = torch.load(run_dir / CHECKPOINT, weights_only=False)
    change(state)
    torch.save(state, run_dir / CHECKPOINT)


def edit_config(run_dir, change) -> None:
    path = run_dir / runs.CONFIG_NAME
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


BAD_RUNS = {
    "checkpoint of another format": (lambda run: rewrite_checkpoint(run, lambda state: state.update(format=0)),
                                     f"{CHECKPOINT}: checkpoint format 0"),
    "truncated checkpoint": (lambda run: (run / CHECKPOINT).write_bytes((run / CHECKPOINT).read_bytes()[:5000]),
                             f"{CHECKPOINT}: unreadable checkpoint"),
    "checkpoint of another configuration": (
        lambda run: edit_config(run, lambda config: config["field"].update(log2_table=13)),
        f"{CHECKPOINT}: checkpoint was trained with field.log2_table=12"),
    "configuration of another version": (lambda run: edit_config(run, lambda config: config.update(colour="red")),
                                         f"{runs.CONFIG_NAME}: configuration does not match this version"),
}


@pytest.mark.parametrize("case", BAD_RUNS)
@pytest.mark.parametrize("command", ["resume", "eval"])
def test_bad_run_folder(run_copy, case, command):
    breaks, named = BAD_RUNS[case]
    breaks(run_copy)
    config = (run_copy / runs.CONFIG_NAME).read_text()
    args = ("train", "--resume", "--out", run_copy, "--steps", 3) if command == "resume" else ("eval", run_copy)
    assert named in error_line(run_cli(*args))
    assert (run_copy / runs.CONFIG_NAME).read_text() == config


def test_eval_and_render_rebuild_the_model_from_the_saved_configuration(trained_run, tmp_path):
    config = json.loads((trained_run / runs.CONFIG_NAME).read_text())
    assert (config["field"]["log2_table"], config["field"]["saliency_resolution"], config["steps"]) == (12, 32, 2)
    assert config["march_steps"] == 160  # SMALL_RUN's --march-steps
    assert runs.load_run(trained_run, "cpu").field.table.shape[1] == 1 << 12
    result = succeeded(run_cli("eval", trained_run, "--out", tmp_path / "eval.json"))
    assert json.loads((tmp_path / "eval.json").read_text())["step"] == 2, result.output
    succeeded(run_cli("render", trained_run, "--out", tmp_path / "frames"))
    assert len(list((tmp_path / "frames").glob("*.png"))) == 1
