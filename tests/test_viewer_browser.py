"""`hollow-taichi view` in a real browser: a tiny trained run served on a free localhost port, headless
Chromium driven by selenium to the page; the test waits for a rendered frame, drags and scrolls the
canvas, and checks that the picture is not blank and changed; it shows the kept saliency cells,
saves a view as PNG with the page's button, closes the browser in the middle of rendering, and stops the viewer with Ctrl-C.

The screenshots go to the test's folder, or to HOLLOW_TAICHI_SCREENSHOTS where set (the README's
picture was made so).
"""
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from scenes_util import SMALL_RUN, free_port, run_cli, tiny_scene

WINDOW = (1024, 640)
SCENE_BOX = (slice(150, 450), slice(320, 660))  # screenshot rows, columns around the start view's centre,
# clear of viser's control panel (right), its notification (top left) and axes (bottom left)
MAX_RESOLUTION = 128  # full-size frames stay small: a tiny model renders only a few 10^3 rays/s on a busy 2-core CPU
STARTUP_SECONDS = 60
FRAME_SECONDS = 60
BLANK_STD = 3.0  # pixel values (0-255): less spread than this over the scene's part of the canvas is blank
CHANGED_LEVELS = 24  # a pixel whose colour moved this far (0-255) changed
CHANGED_SHARE = 0.005  # a picture changed when this share of its pixels did


class ViewerProcess:
    """`hollow-taichi view` in a child process; its stderr lines are collected by a thread."""

    def __init__(self, run: Path, port: int):
        command = [sys.executable, "-m", "hollow_taichi.app.cli", "view", str(run), "--port", str(port),
                   "--arch", "cpu", "--max-resolution", str(MAX_RESOLUTION)]
        # From the run's folder: in the repository root, its hollow_taichi/ would shadow the installed
        # package. With Ctrl-C's default action, as in a terminal: a shell without job control starts
        # background jobs ignoring SIGINT, Python then raises no KeyboardInterrupt, and a suite run
        # with `&` saw a viewer that never stopped (SigIgn 0x1001007 in its /proc status).
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                        cwd=run.parent, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        for line in self.process.stderr:
            self.stderr.append(line)
            self.lines.put(line)

    def wait_for_line(self, prefix: str, seconds: float) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.process.poll() is None, f"viewer exited: {''.join(self.stderr)}"
                continue
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting {prefix!r} within {seconds} s: {''.join(self.stderr)}")

    def interrupt(self) -> int:
        """Ctrl-C; the viewer finishes the frame it is rendering first."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_browser(binary: str, url: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
                     "--disable-dev-shm-usage", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    driver.get(url)
    return driver


def status_text(driver) -> str:
    """The viewer's status line in the page (frame rate, size, full or moving)."""
    from selenium.webdriver.common.by import By

    lines = [line for line in driver.find_element(By.TAG_NAME, "body").text.splitlines() if " fps" in line]
    return lines[0] if lines else ""


def wait_for_status(driver, wanted: str, seconds: float = FRAME_SECONDS) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = status_text(driver)
        if wanted in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"status never showed {wanted!r} within {seconds} s (last: {status_text(driver)!r})")


def scene_region(driver) -> np.ndarray:
    """The screenshot's pixels (RGB) in SCENE_BOX, where the start view puts the scene."""
    png = np.frombuffer(driver.get_screenshot_as_png(), dtype=np.uint8)
    image = cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return image[SCENE_BOX].astype(np.float32)


def changed(before: np.ndarray, after: np.ndarray) -> bool:
    return float((np.abs(after - before).max(axis=-1) > CHANGED_LEVELS).mean()) > CHANGED_SHARE


def wait_for_change(driver, before: np.ndarray, seconds: float = FRAME_SECONDS) -> np.ndarray:
    """The scene's part of the page once it differs from `before` and shows a full-size frame."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if "(full)" in status_text(driver):
            now = scene_region(driver)
            if changed(before, now):
                return now
        time.sleep(0.2)
    raise AssertionError(f"the picture did not change within {seconds} s (status: {status_text(driver)!r})")


def save_screenshot(driver, name: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / name))


def drag_and_scroll(driver) -> None:
    """Orbit by dragging on the canvas left of the panel, then zoom with the wheel."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.by import By

    canvas = max(driver.find_elements(By.TAG_NAME, "canvas"), key=lambda element: element.size["width"])
    offset = (-canvas.size["width"] // 2 + 120, canvas.size["height"] // 2 - 80)  # from the canvas centre
    actions = ActionChains(driver).move_to_element_with_offset(canvas, *offset).click_and_hold()
    for _ in range(4):
        actions = actions.pause(0.05).move_by_offset(40, 8)
    actions.release().perform()
    ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(canvas, *offset), 0, -150).perform()


def click_button(driver, label: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f"//button[normalize-space()='{label}']").click()


def click_checkbox(driver, label: str) -> None:
    """The checkbox after the text `label` in viser's panel (clicked by script: the input is styled over)."""
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.XPATH, f"//*[normalize-space(text())='{label}']/following::input[@type='checkbox'][1]")
    driver.execute_script("arguments[0].click()", box)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("viewer")
    run = root / "run"
    result = run_cli("train", tiny_scene(root / "scene"), "--out", run, "--steps", 10, *SMALL_RUN)
    assert result.exit_code == 0, result.output
    return run


def test_view_in_a_browser(browser, tiny_run, tmp_path):
    screenshots = Path(os.environ.get("HOLLOW_TAICHI_SCREENSHOTS", tmp_path))
    port = free_port()
    viewer = ViewerProcess(tiny_run, port)
    drivers = []
    try:
        url = viewer.wait_for_line("viewer: http://", STARTUP_SECONDS).split()[1]
        assert url == f"http://127.0.0.1:{port}"
        driver = start_browser(browser, url)
        drivers.append(driver)
        wait_for_status(driver, "(full)")
        time.sleep(0.5)  # the browser draws the frame it received
        first = scene_region(driver)
        save_screenshot(driver, "viewer_start.png", screenshots)
        assert first.std() > BLANK_STD, "the start view is blank"

        drag_and_scroll(driver)
        moved = wait_for_change(driver, first)
        save_screenshot(driver, "viewer_moved.png", screenshots)
        assert moved.std() > BLANK_STD, "the view after moving is blank"

        click_checkbox(driver, "Kept saliency cells")  # the kept cells drawn by the browser over the frame
        cells = wait_for_change(driver, moved)
        save_screenshot(driver, "viewer_cells.png", screenshots)
        assert cells.std() > BLANK_STD

        click_button(driver, "Save PNG")
        saved = viewer.wait_for_line("viewer: saved ", FRAME_SECONDS).split("saved ", 1)[1].strip()
        assert Path(saved).parent == tiny_run and cv2.imread(saved) is not None

        drag_and_scroll(driver)  # then leave while the viewer renders
        driver.quit()
        drivers.remove(driver)
        second = start_browser(browser, url)  # the server is not stuck on the browser that left
        drivers.append(second)
        wait_for_status(second, "(full)")
        assert viewer.process.poll() is None
    finally:
        for driver in drivers:
            driver.quit()
        code = viewer.interrupt() if viewer.process.poll() is None else viewer.process.returncode
        viewer.kill()
    stderr = "".join(viewer.stderr)
    assert code == 130, stderr
    assert "Traceback" not in stderr, stderr
    assert "interrupted: hollow-taichi view stopped" in stderr
