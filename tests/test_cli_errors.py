"""Bad input through `hollow-taichi train` (and eval): one line `error: ...` naming the file or value, a
non-zero exit, no traceback, and no run folder left behind. These fail before any training starts; but
missing images, which --skip-missing turns into frames left out."""
import json

import pytest
from scenes_util import SIZE, SMALL_RUN, TRAIN_FILE, error_line, frame_pixels, run_cli, tiny_scene, write_image


def edit_transforms(root, edit) -> None:
    path = root / TRAIN_FILE
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def set_pose_entry(frame: int, value):
    return lambda data: data["frames"][frame]["transform_matrix"][1].__setitem__(3, value)


BAD_SCENES = {
    "no transforms file": (lambda root: (root / TRAIN_FILE).unlink(), "transforms_train.json or transforms.json"),
    "malformed JSON": (lambda root: (root / TRAIN_FILE).write_text('{"frames": [oops]}'), TRAIN_FILE),
    "missing image": (lambda root: (root / "train" / "r_3.png").unlink(), "train/r_3 not found"),
    "unreadable image": (lambda root: (root / "train" / "r_4.png").write_bytes(b"not a png"), "r_4.png"),
    "truncated image": (lambda root: (root / "train" / "r_5.png").write_bytes(
        (root / "train" / "r_5.png").read_bytes()[:-30]), "r_5.png"),
    "image size differs from JSON": (lambda root: write_image(root / "train" / "r_6.png",
                                                              frame_pixels(6, SIZE - 4, SIZE)), "r_6.png"),
    "non-finite pose": (lambda root: edit_transforms(root, set_pose_entry(2, float("nan"))), "frame 2"),
    "zero frames": (lambda root: edit_transforms(root, lambda data: data.update(frames=[])), "zero frames"),
}


@pytest.mark.parametrize("case", BAD_SCENES)
def test_bad_scene(tmp_path, case):
    root = tiny_scene(tmp_path / "scene")
    breaks, named = BAD_SCENES[case]
    breaks(root)
    line = error_line(run_cli("train", root, "--out", tmp_path / "run", "--steps", 1, *SMALL_RUN))
    assert named in line
    assert not (tmp_path / "run").exists()


def test_skip_missing_trains_on_the_frames_present_and_eval_loads_them_alike(tmp_path):
    root = tiny_scene(tmp_path / "scene", frames=9)  # frames 0 and 8 are held out for test
    for index in (3, 8):
        (root / "train" / f"r_{index}.png").unlink()
    line = error_line(run_cli("train", root, "--out", tmp_path / "refused", "--steps", 1, *SMALL_RUN))
    assert "frame 3: image" in line and "train/r_3 not found" in line and "--skip-missing" in line

    run = tmp_path / "run"
    result = run_cli("train", root, "--out", run, "--steps", 1, "--skip-missing", *SMALL_RUN)
    assert result.exit_code == 0, result.output
    assert "note: skipped 2 frames whose images are missing (1 train, 1 test)" in result.output.splitlines()
    assert json.loads((run / "metrics.json").read_text())["images"] == 1
    assert json.loads((run / "config.json").read_text())["skip_missing"] is True
    evaluated = run_cli("eval", run, "--out", tmp_path / "eval.json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads((tmp_path / "eval.json").read_text())["images"] == 1


@pytest.mark.parametrize("views", [0, -2])
def test_view_counts_below_one(tmp_path, views):
    line = error_line(run_cli("train", tiny_scene(tmp_path / "scene"), "--out", tmp_path / "run", "--steps", 1,
                              "--eval-views", views, *SMALL_RUN))
    assert line == f"error: --eval-views must be at least 1, got {views}"
    assert not (tmp_path / "run").exists()
    line = error_line(run_cli("eval", tmp_path / "no_run", "--views", views))
    assert line == f"error: --views must be at least 1, got {views}"


def test_missing_scene_folder(tmp_path):
    line = error_line(run_cli("train", tmp_path / "no_such_scene", "--out", tmp_path / "run", *SMALL_RUN))
    assert "no_such_scene" in line and "does not exist" in line


def test_unknown_arch(tmp_path):
    result = run_cli("train", tmp_path, "--out", tmp_path / "run", "--arch", "tpu")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "'tpu' is not one of" in result.output


def test_zero_steps(tmp_path):
    line = error_line(run_cli("train", tiny_scene(tmp_path / "scene"), "--out", tmp_path / "run", "--steps", 0,
                              *SMALL_RUN))
    assert "--steps must be at least 1, got 0" in line


def test_unknown_setting(tmp_path):
    line = error_line(run_cli("train", tiny_scene(tmp_path / "scene"), "--out", tmp_path / "run", "--steps", 1,
                              "--set", "field.gates=off", *SMALL_RUN))
    assert "--set 'field.gates=off': no setting 'field.gates'" in line
    assert not (tmp_path / "run").exists()


def test_setting_is_validated_like_its_option(tmp_path):
    line = error_line(run_cli("train", tiny_scene(tmp_path / "scene"), "--out", tmp_path / "run", "--steps", 1,
                              "--set", "field.gate=hard", *SMALL_RUN))
    assert "unknown gate 'hard'" in line


@pytest.mark.parametrize("minutes", ["-1", "nan"])
def test_bad_checkpoint_minutes(tmp_path, minutes):
    line = error_line(run_cli("train", tiny_scene(tmp_path / "scene"), "--out", tmp_path / "run", "--steps", 1,
                              "--checkpoint-minutes", minutes, *SMALL_RUN))
    assert f"--checkpoint-minutes must be a non-negative number, got {float(minutes)}" in line
    assert not (tmp_path / "run").exists()


def test_output_folder_of_another_run_needs_force(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    line = error_line(run_cli("train", tiny_scene(tmp_path / "scene"), "--out", out, "--steps", 1, *SMALL_RUN))
    assert f"{out} holds another run" in line and "--force" in line
    assert (out / "config.json").read_text() == "{}"


def test_resume_without_a_run(tmp_path):
    line = error_line(run_cli("train", "--resume", "--out", tmp_path / "empty", *SMALL_RUN))
    assert str(tmp_path / "empty" / "config.json") in line


def test_output_folder_that_cannot_be_made(tmp_path):
    (tmp_path / "a_file").write_text("")
    out = tmp_path / "a_file" / "run"
    line = error_line(run_cli("train", tiny_scene(tmp_path / "scene"), "--out", out, "--steps", 1, *SMALL_RUN))
    assert f"{out}: cannot create the run folder" in line


def test_ctrl_c_outside_training_is_one_line_and_exit_130(tmp_path, monkeypatch):
    from hollow_taichi import runs

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "load_model", interrupted)
    result = run_cli("eval", tmp_path / "run")
    assert result.exit_code == 130
    assert result.output.strip() == "interrupted: hollow-taichi eval stopped"


@pytest.mark.parametrize("setting, message", [("qat_bits=1", "qat_bits must be between 2 and 16, got 1"),
                                              ("qat_start=1", "qat_start must be in [0, 1), got 1.0")])
def test_quantization_aware_training_settings_are_validated(tmp_path, setting, message):
    line = error_line(run_cli("train", tiny_scene(tmp_path / "scene"), "--out", tmp_path / "run", "--steps", 1,
                              "--set", setting, *SMALL_RUN))
    assert line == f"error: {message}"


def test_export_lossless_takes_no_bits(tmp_path):
    result = run_cli("export", tmp_path, "--out", tmp_path / "model.htc", "--lossless", "--bits", 4)
    assert result.exit_code == 2 and "--lossless stores float32" in result.output
