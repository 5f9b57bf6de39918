"""Progress reports: a bar on a terminal, a plain line at most every 10 seconds elsewhere (a log file
stays small), nothing with --no-progress."""
import io
import re
import subprocess
import sys

from scenes_util import SMALL_RUN, tiny_scene

from hollow_taichi.progress import BarProgress, LineProgress, Progress, progress_report

VALUES = {"loss": 0.25, "psnr": 6.02}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_come_at_most_every_ten_seconds_and_at_the_end():
    stream, now = io.StringIO(), [0.0]
    with LineProgress(total=210, stream=stream, clock=lambda: now[0]) as report:
        for step in range(1, 211):
            now[0] = 0.25 * step
            report.update(step, VALUES)
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["40/210", "80/210", "120/210", "160/210", "200/210", "210/210"]
    assert lines[0] == "step 40/210 [10 s] loss 0.25 psnr 6.02"
    assert "\r" not in stream.getvalue()


def test_an_evaluation_counts_views():
    stream = io.StringIO()
    with progress_report(True, 2, 0, stream, unit="view") as report:
        report.update(1, {"psnr": 20.0})
        report.update(2, {"psnr": 21.5})
    assert stream.getvalue().startswith("view 2/2 [0 s] psnr 21.5")
    with progress_report(True, 2, 0, Terminal(), unit="view") as bar:
        assert bar.bar.unit == "view"


def test_a_bar_only_on_a_terminal_and_nothing_without_progress():
    assert isinstance(progress_report(True, 10, 0, Terminal()), BarProgress)
    assert isinstance(progress_report(True, 10, 0, io.StringIO()), LineProgress)
    assert type(progress_report(False, 10, 0, Terminal())) is Progress


def test_a_run_logged_to_a_file_writes_plain_lines_only(tmp_path):
    """`train` with stdout and stderr redirected to a file, as a batch job runs it."""
    steps = 5
    progress_shown = [arg for arg in SMALL_RUN if arg != "--no-progress"]
    command = [sys.executable, "-m", "hollow_taichi.app.cli", "train", str(tiny_scene(tmp_path / "scene")),
               "--out", str(tmp_path / "run"), "--steps", str(steps), *progress_shown]
    log_path = tmp_path / "train.log"
    with log_path.open("w") as log:
        returncode = subprocess.run(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, timeout=300).returncode
    log = log_path.read_bytes()  # not read_text, whose universal newlines turn carriage returns into "\n"
    assert returncode == 0, log
    assert b"\r" not in log
    assert len(log) < 2000, log
    progress_lines = [line for line in log.decode().splitlines() if line.startswith("step ")]
    assert progress_lines and progress_lines[-1].startswith(f"step {steps}/{steps} ")
    view_lines = [line for line in log.decode().splitlines() if line.startswith("view ")]
    assert len(view_lines) == 1 and re.fullmatch(r"view 1/1 \[\d+ s\] psnr [\d.]+", view_lines[0])  # 1 test view
