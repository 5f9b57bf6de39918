"""`view` and `train --viewer` as a user meets them without a browser: one-line errors for a missing
viser, a port in use and a bad run folder; train --viewer trains and gives its port back."""
import importlib.util
import socket
import sys
from contextlib import contextmanager

import pytest

from hollow_taichi import viewer

from scenes_util import SMALL_RUN, error_line, free_port, run_cli, tiny_scene

needs_viser = pytest.mark.skipif(importlib.util.find_spec("viser") is None,
                                 reason='viser is not installed (pip install ".[viewer]")')


def test_view_without_viser_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "viser", None)  # import viser raises ImportError
    line = error_line(run_cli("view", tmp_path / "run"))
    assert line == f"error: {viewer.INSTALL_HINT}"


@contextmanager
def port_in_use():
    """A localhost port that a listening socket holds while the block runs."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@needs_viser
def test_view_on_a_port_in_use(tmp_path):
    with port_in_use() as port:
        line = error_line(run_cli("view", tmp_path / "run", "--port", port))
    assert line == f"error: port {port} on 127.0.0.1 is in use: choose another with --port"


@needs_viser
def test_view_of_a_bad_run_folder(tmp_path):
    line = error_line(run_cli("view", tmp_path / "no_such_run", "--port", free_port()))
    assert "no_such_run" in line and "no such run folder" in line


@needs_viser
def test_view_of_an_unresolvable_host(tmp_path):
    line = error_line(run_cli("view", tmp_path / "run", "--host", "no-such-host.invalid", "--port", free_port()))
    assert line.startswith("error: --host no-such-host.invalid: cannot resolve it")


@needs_viser
def test_train_with_viewer_on_a_port_in_use_stops_before_training(tmp_path):
    with port_in_use() as port:
        line = error_line(run_cli("train", tiny_scene(tmp_path / "scene"), "--out", tmp_path / "run", "--steps", 1,
                                  "--viewer", "--port", port, *SMALL_RUN))
    assert "is in use" in line
    assert not (tmp_path / "run").exists()


@needs_viser
def test_train_with_viewer_trains_and_gives_the_port_back(tmp_path):
    port = free_port()
    result = run_cli("train", tiny_scene(tmp_path / "scene"), "--out", tmp_path / "run", "--steps", 2,
                     "--viewer", "--port", port, *SMALL_RUN)
    assert result.exit_code == 0, result.output
    assert f"viewer: http://127.0.0.1:{port}" in result.output
    assert (tmp_path / "run" / "metrics.json").is_file()
    viewer.check_port_free("127.0.0.1", port)  # the server stopped with training
