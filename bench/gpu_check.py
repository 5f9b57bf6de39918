"""Everything a session with a lent GPU runs, in one device call under 10 minutes; and its dry run here.

  python bench/gpu_check.py [--arch cuda] [--out DIR] [--scene .scenes/lego] [--minutes 2] [--test-views 10]
  python bench/gpu_check.py --arch cpu --dry-run --out DIR      the same stages, tiny, built-in scene
  python bench/gpu_check.py --fetch-wheels --pack-lego --fetch-vulkan-loader      here, before the call

(scripts/gpu_check.sh runs this file; its header says what to carry.) Stages, in this order; each has a
time limit, and one that fails does not stop the next:

  install      the wheels in --wheels, then this project, into --work/site without fetching anything
               (pip --no-index --no-deps --target); then a probe prints versions and starts Taichi on --arch
  kernels      bench/kernels.py: hash-encode and composite throughput
  train_speed  bench/train_speed.py, where the checkout has it, for hollow and for ngp: samples/s,
               steps/s, time per phase
  lego         bench/train_lego.py: train --scene for --minutes, PSNR and SSIM on --test-views views
  tests        the tests that start ARCH (HOLLOW_TAICHI_ONLY=ARCH, REQUIRE=ARCH): CPU tests are CI's
  vulkan       the tests that start Vulkan, HOLLOW_TAICHI_REQUIRE=vulkan, where a Vulkan loader is
               installed (on the GPU machine the NVIDIA driver's, see scripts/gpu_check.sh)

The benchmarks run first, on a quiet GPU, and take known times; the suite's time on the device is not
known, so it gets what is left before --deadline, less the Vulkan stage's limit.

Writes summary.json, summary.md and a log per stage to --out (8 files, as many as a device call
returns). Exit status 0 when every stage passed or was skipped for a stated reason (a file or loader
that is not there), 1 otherwise. Children run in --work, never in the checkout, so that they import the
installed package, not the checkout's folders.

This file imports only the standard library at the top: it runs before anything is installed.
"""
from __future__ import annotations

import argparse
import ctypes.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LEGO  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
WHEELS = REPO / ".whl"
SCENES = REPO / ".scenes"
GL_DEBS = REPO / ".gl"
PACKED_LEGO = SCENES / "lego"
BUILTIN_SCENE = REPO / "data" / "builtin"
TRAVEL_LIMIT = 64 * 2**20  # bytes a device call carries: the working tree and the carried folders

STAGES = ("install", "kernels", "train_speed", "lego", "tests", "vulkan")
# Seconds per stage. Lego's is its training budget plus LEGO_OVERHEAD (load, compile, evaluate); the tests
# get what is left before the deadline, less the limits of the stages after them. The Vulkan tests took
# 69 s alone on an H200 (2026-11-27, 56 tests), past 75 beside training runs; the training speed of one
# method took 41 s there, and the stage runs both.
LIMITS = {"install": 90, "kernels": 60, "train_speed": 150, "vulkan": 120}
LEGO_OVERHEAD = 60

# What the GPU machine lacks (KINDS.md lists its packages): taichi and taichi's dill. imageio-ffmpeg
# (video writing only) is not carried: its wheel is 68 MB.
CARRIED = ("taichi==1.7.4", "dill==0.4.1")
MANYLINUX = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
# Taichi's C API for C/C++ programs (a second 55 MB copy of the compiler); Python never loads it.
TAICHI_UNUSED = "taichi/_lib/c_api/"
GL_PACKAGES = ("libvulkan1", "libegl1", "libglvnd0", "libopengl0", "libgl1", "libglx0", "libgles2")
NVIDIA_ICD = Path("/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json")
# Not part of the project's sources: what install copies to build from.
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "build", "runs", "*.egg-info", "__pycache__", ".pytest_cache",
                                     ".whl", ".scenes", ".gl")


@dataclass(frozen=True)
class Sizes:
    """What the benchmarks and tests run: full on the GPU, tiny in a dry run."""

    kernel_points: int
    kernel_repeats: int
    speed_steps: int
    speed_warmup: int
    speed_hash_log2: int
    tests: tuple[str, ...]  # pytest paths, relative to the checkout
    vulkan_tests: tuple[str, ...]


FULL = Sizes(1 << 20, 10, 300, 50, 19, ("tests",), ("tests",))
DRY = Sizes(4096, 1, 4, 2, 12, ("tests/test_volume_render.py", "tests/test_backend.py"),
            ("tests/test_volume_render.py",))


@dataclass
class Plan:
    """A stage's commands, run in order until one fails. With `skip` or `fail` set, nothing runs: the
    stage is skipped (something optional is not there) or failed (something it needs is not there)."""

    commands: list[list[str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""
    skip: str = ""
    fail: str = ""


@dataclass
class StageResult:
    name: str
    status: str  # passed, failed, timeout or skipped
    seconds: float = 0.0
    note: str = ""
    commands: list[str] = field(default_factory=list)
    highlights: list[str] = field(default_factory=list)  # tables and pytest's summary line, as printed
    records: list[dict] = field(default_factory=list)  # the JSON objects the stage printed


class ExitError(Exception):
    """An error a user can cause; main prints it as one line and exits 1."""


def python_command(*arguments: str) -> list[str]:
    return [sys.executable, *arguments]


def pytest_command(paths: tuple[str, ...], deselect_video: bool) -> list[str]:
    command = python_command("-m", "pytest", "-q", "-ra", "--durations=10", *(str(REPO / path) for path in paths))
    return command + (["-k", "not video"] if deselect_video else [])


def highlights(output: str) -> list[str]:
    """The lines worth a summary: markdown tables with their 'Machine:' line, pytest's result line."""
    pytest_result = re.compile(r"^=*\s*\d+ (passed|failed|error|skipped|deselected).* in [\d.]+s")
    return [line for line in output.splitlines()
            if line.startswith(("|", "Machine:")) or pytest_result.match(line)]


def records(output: str) -> list[dict]:
    """The JSON objects printed a line each."""
    found = []
    for line in output.splitlines():
        if line.startswith("{") and line.endswith("}"):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found


def run_logged(command: list[str], log, env: dict[str, str], cwd: Path, timeout: float) -> int | None:
    """Run `command` with its output appended to `log`; its exit status, or None if it ran out of time
    (then it is stopped with its whole process group: benchmarks start processes of their own)."""
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                               start_new_session=True)
    try:
        return process.wait(timeout=max(timeout, 0))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.write(f"\n[gpu_check] stopped after {timeout:.0f} s, the stage's time limit\n")
        return None


class Check:
    """Runs the stages in order, each against its time limit, and writes the summary."""

    def __init__(self, args):
        self.args = args
        self.dry = args.dry_run
        self.sizes = DRY if self.dry else FULL
        self.out, self.work = Path(args.out), Path(args.work)
        self.site = self.work / "site"
        self.scene = Path(args.scene or (BUILTIN_SCENE if self.dry else PACKED_LEGO)).resolve()
        self.minutes = args.minutes if args.minutes is not None else (0.05 if self.dry else 2.0)
        self.test_views = args.test_views if args.test_views is not None else (1 if self.dry else 10)
        self.stages = ["install"] + [name for name in STAGES if name in args.stages and name != "install"]
        self.deadline = time.monotonic() + args.deadline
        self.probe: dict = {}
        self.results: list[StageResult] = []

    def base_env(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1", HOLLOW_TAICHI_ONLY="", HOLLOW_TAICHI_SKIP="")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.site), os.environ.get("PYTHONPATH")]))
        return env

    def limit(self, name: str) -> float | None:
        """Stage `name`'s own time limit (None for the tests: see LIMITS)."""
        return 60 * self.minutes + LEGO_OVERHEAD if name == "lego" else LIMITS.get(name)

    def time_for(self, name: str) -> float:
        """Seconds stage `name` may take: its limit, within what is left before the deadline."""
        left = self.deadline - time.monotonic()
        if self.limit(name) is None:
            later = self.stages[self.stages.index(name) + 1:]
            return left - sum(self.limit(stage) or 0 for stage in later)
        return min(self.limit(name), left)

    # One plan per stage.

    def copy_sources(self) -> Path:
        """The checkout's sources copied to work/src: pip builds there, so that no build/ or *.egg-info is
        left in the checkout (a stale build/lib would ship modules deleted since)."""
        sources = self.work / "src"
        shutil.rmtree(sources, ignore_errors=True)
        shutil.copytree(REPO, sources, ignore=NOT_SOURCES)
        return sources

    def plan_install(self) -> Plan:
        wheels = sorted(Path(self.args.wheels).glob("*.whl")) if self.args.wheels else []
        pip = python_command("-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                             "--no-cache-dir", "--upgrade", "--target", str(self.site))
        commands = [pip + [str(wheel) for wheel in wheels]] if wheels else []
        commands.append(pip + ["--no-build-isolation", str(self.copy_sources())])
        commands.append(python_command(str(Path(__file__).resolve()), "--probe", self.args.arch,
                                       "--work", str(self.work)))
        note = (f"wheels: {', '.join(wheel.name for wheel in wheels)}" if wheels
                else f"no wheels in {self.args.wheels or '(none given)'}: taichi etc. from the running Python")
        return Plan(commands, note=note)

    def plan_kernels(self) -> Plan:
        return Plan([python_command(str(BENCH / "kernels.py"), "--arch", self.args.arch,
                                    "--points", str(self.sizes.kernel_points),
                                    "--repeats", str(self.sizes.kernel_repeats))])

    def plan_train_speed(self) -> Plan:
        """Both methods on a quiet GPU: on an H200 (2026-11-27), with five or seven runs sharing it,
        hollow trained ~0.67x ngp's samples/s; neither was timed alone there."""
        script = BENCH / "train_speed.py"
        if not script.exists():
            return Plan(skip=f"{script.relative_to(REPO)} is not in this checkout")
        return Plan([python_command(str(script), "--scene", str(self.scene), "--arch", self.args.arch,
                                    "--steps", str(self.sizes.speed_steps), "--warmup", str(self.sizes.speed_warmup),
                                    "--hash-log2", str(self.sizes.speed_hash_log2), "--method", method)
                     for method in ("hollow", "ngp")], note=f"scene {self.scene}")

    def plan_lego(self) -> Plan:
        if not (self.scene / "transforms_train.json").exists():
            return Plan(fail=f"no scene at {self.scene}: carry .scenes (scripts/gpu_check.sh --pack-lego)")
        return Plan([python_command(str(BENCH / "train_lego.py"), "--scene", str(self.scene),
                                    "--minutes", str(self.minutes), "--arch", self.args.arch,
                                    "--test-views", str(self.test_views))], note=f"scene {self.scene}")

    def plan_tests(self) -> Plan:
        """The tests that start --arch: the CPU tests are CI's, and a lent GPU has 15 minutes a session."""
        video = self.probe.get("imageio_ffmpeg") is False
        arch = self.args.arch
        note = f"HOLLOW_TAICHI_REQUIRE={arch} HOLLOW_TAICHI_ONLY={arch}"
        if video:
            note += "; video tests deselected: imageio-ffmpeg is not installed (its wheel is 68 MB)"
        return Plan([pytest_command(self.sizes.tests, video)],
                    env={"HOLLOW_TAICHI_REQUIRE": arch, "HOLLOW_TAICHI_ONLY": arch}, note=note)

    def plan_vulkan(self) -> Plan:
        if ctypes.util.find_library("vulkan") is None:
            return Plan(skip="no Vulkan loader (libvulkan.so.1); on the GPU machine carry .gl "
                             "(scripts/gpu_check.sh --fetch-vulkan-loader) and unpack it first")
        env = {"HOLLOW_TAICHI_REQUIRE": "vulkan", "HOLLOW_TAICHI_ONLY": "vulkan"}
        note = "the system's Vulkan drivers"
        if NVIDIA_ICD.exists() and "VK_DRIVER_FILES" not in os.environ:
            env["VK_DRIVER_FILES"] = str(NVIDIA_ICD)
            note = f"VK_DRIVER_FILES={NVIDIA_ICD}"
        return Plan([pytest_command(self.sizes.vulkan_tests, False)], env=env, note=note)

    def run_stage(self, name: str) -> StageResult:
        try:
            plan = getattr(self, f"plan_{name}")()
        except OSError as error:  # copying the sources, say
            return StageResult(name, "failed", note=str(error))
        if plan.skip:
            return StageResult(name, "skipped", note=plan.skip)
        if plan.fail:
            return StageResult(name, "failed", note=plan.fail)
        budget = self.time_for(name)
        if budget <= 0:
            return StageResult(name, "timeout", note="no time left before the deadline")
        env = dict(self.base_env(), **plan.env)
        started = time.monotonic()
        status = "passed"
        with open(self.out / f"{name}.log", "w") as log:
            for command in plan.commands:
                code = run_logged(command, log, env, self.work, budget - (time.monotonic() - started))
                if code != 0:
                    status = "timeout" if code is None else "failed"
                    break
        output = (self.out / f"{name}.log").read_text(errors="replace")
        return StageResult(name, status, time.monotonic() - started, plan.note,
                           [" ".join(command) for command in plan.commands], highlights(output), records(output))

    def run(self) -> bool:
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        for name in self.stages:
            result = self.run_stage(name)
            if name == "install" and result.records:
                self.probe = result.records[0]
            self.results.append(result)
            print(f"[gpu_check] {name}: {result.status} ({result.seconds:.0f} s) {result.note}", flush=True)
            self.write_summary(time.monotonic() - started)  # after each stage: a killed run keeps what it had
        return all(result.status in ("passed", "skipped") for result in self.results)

    def write_summary(self, seconds: float) -> None:
        passed = all(result.status in ("passed", "skipped") for result in self.results)
        summary = {"arch": self.args.arch, "dry_run": self.dry, "passed": passed, "seconds": round(seconds, 1),
                   "stages": [asdict(result) for result in self.results]}
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        (self.out / "summary.md").write_text(self.markdown(summary))

    def markdown(self, summary: dict) -> str:
        lines = [f"# GPU check ({summary['arch']}{', dry run' if self.dry else ''}): "
                 f"{'passed' if summary['passed'] else 'FAILED'} in {summary['seconds']:.0f} s", "",
                 f"Environment: `{json.dumps(self.probe)}`", "",
                 "| stage | result | seconds | note |", "| --- | --- | --- | --- |"]
        lines += [f"| {r.name} | {r.status} | {r.seconds:.0f} | {r.note} |" for r in self.results]
        for result in self.results:
            if result.highlights:
                lines += ["", f"## {result.name}", ""]
                for line in result.highlights:  # a table needs a blank line after the text above it
                    lines += [line, ""] if line.startswith("Machine:") else [line]
        return "\n".join(lines) + "\n"


def probe(arch: str, work: Path) -> None:
    """Print versions as one JSON line, then start Taichi on `arch`; fail unless the package imported is
    the one installed under work/site."""
    import importlib.metadata
    import importlib.util

    import torch

    import hollow_taichi
    from hollow_taichi import backend
    from hollow_taichi.errors import BackendError

    facts = {name: importlib.metadata.version(name) for name in ("numpy", "torch", "taichi", "dill", "hollow-taichi")}
    facts["python"] = sys.version.split()[0]
    facts["cuda_device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    facts["imageio_ffmpeg"] = importlib.util.find_spec("imageio_ffmpeg") is not None
    if shutil.which("nvidia-smi"):
        facts["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True).stdout.strip()
    print(json.dumps(facts), flush=True)
    site = (work / "site").resolve()
    if not Path(hollow_taichi.__file__).resolve().is_relative_to(site):
        raise ExitError(f"hollow_taichi was imported from {hollow_taichi.__file__}, not from the install in {site}")
    try:
        print(json.dumps({"backend": backend.init(arch)}))
    except BackendError as error:
        raise ExitError(str(error)) from None


def slim_taichi(wheel: Path) -> None:
    """Rewrite the taichi wheel without its C API (TAICHI_UNUSED), RECORD to match: 56 MB -> 36 MB."""
    slim = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            if item.filename.startswith(TAICHI_UNUSED):
                continue
            data = source.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                kept = [line for line in data.decode().splitlines() if not line.startswith(TAICHI_UNUSED)]
                data = ("\n".join(kept) + "\n").encode()
            target.writestr(item, data, compress_type=zipfile.ZIP_DEFLATED)
    slim.replace(wheel)


def fetch_wheels(target: Path, python_version: str) -> None:
    """Download CARRIED for the GPU machine's Python into `target` (replacing what was there); slim taichi."""
    shutil.rmtree(target, ignore_errors=True)
    platforms = [option for name in MANYLINUX for option in ("--platform", name)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", python_version, "--implementation", "cp", *platforms, "-d", str(target),
                    *CARRIED], check=True)
    for wheel in target.glob("taichi-*.whl"):
        slim_taichi(wheel)


def pack_lego(source: Path, test_views: int) -> None:
    """Copy a Blender-layout scene's train split and `test_views` evenly spaced test views (the ones
    bench/train_lego.py --test-views picks on the full split) into .scenes/NAME; no val split."""
    from hollow_taichi.errors import HollowError
    from hollow_taichi.scenes import evenly_spaced
    from hollow_taichi.scenes.transforms import read_frames

    if not (source / "transforms_train.json").exists():
        raise ExitError(f"{source}: no transforms_train.json (give the Lego folder with --lego-source)")
    target = SCENES / source.resolve().name
    shutil.rmtree(target, ignore_errors=True)
    for split, count in (("train", 0), ("test", test_views)):
        try:
            data, frames = read_frames(source / f"transforms_{split}.json")
        except HollowError as error:
            raise ExitError(str(error)) from None
        chosen = evenly_spaced(len(frames), count or None)  # 0: every frame
        for index in chosen:
            image = target / frames[index].image.relative_to(source)
            image.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(frames[index].image, image)
        data["frames"] = [data["frames"][index] for index in chosen]
        (target / f"transforms_{split}.json").write_text(json.dumps(data, indent=1))


def fetch_vulkan_loader() -> None:
    """Download the Vulkan/EGL loader packages into .gl, as the device tool's README says (apt-get)."""
    shutil.rmtree(GL_DEBS, ignore_errors=True)
    GL_DEBS.mkdir()
    lists = Path(tempfile.gettempdir()) / "amd64"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    options = ["-oAPT::Architecture=amd64", "-oAPT::Architectures=amd64", f"-oDir::State::Lists={lists}"]
    subprocess.run(["apt-get", *options, "-qq", "update"], check=True)
    subprocess.run(["apt-get", *options, "-qq", "download", *GL_PACKAGES], check=True, cwd=GL_DEBS)


def folder_size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def travel_size() -> bool:
    """Print what a device call carries (the working tree and the carried folders); False if over 64 MiB."""
    listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    sizes = {"working tree": sum((REPO / name).stat().st_size for name in listed if (REPO / name).is_file())}
    sizes.update({folder.name: folder_size(folder) for folder in (WHEELS, SCENES, GL_DEBS) if folder.exists()})
    total = sum(sizes.values())
    print("travels: " + ", ".join(f"{name} {size / 2**20:.1f} MiB" for name, size in sizes.items())
          + f"; total {total / 2**20:.1f} MiB of {TRAVEL_LIMIT / 2**20:.0f}")
    return total <= TRAVEL_LIMIT


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=("cuda", "cpu"), default="cuda", help="Vulkan has a stage of its own")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes, the built-in scene, a test subset")
    parser.add_argument("--out", default=os.environ.get("OUT") or str(REPO / "runs" / "gpu_check"),
                        help="results folder (default: $OUT, else runs/gpu_check)")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "gpu_check"),
                        help="where the install and the children's working folder go")
    parser.add_argument("--wheels", default=str(WHEELS),
                        help="folder of wheels that install installs first, --fetch-wheels fills ('' for none)")
    parser.add_argument("--scene", default=None, help="default: .scenes/lego, or the built-in scene in a dry run")
    parser.add_argument("--minutes", type=float, default=None, help="Lego training budget (default 2; dry 0.05)")
    parser.add_argument("--test-views", type=int, default=None, help="PSNR views (default 10; dry 1)")
    parser.add_argument("--stages", default=",".join(STAGES[1:]),
                        help="comma-separated stages after install, which always runs (default: all)")
    parser.add_argument("--deadline", type=float, default=570, help="seconds for all stages together")
    parser.add_argument("--fetch-wheels", action="store_true", help="download .whl for the GPU machine")
    parser.add_argument("--python-version", default="3.12", help="of the wheels --fetch-wheels downloads")
    parser.add_argument("--pack-lego", action="store_true", help="copy Lego's train split and test views to .scenes")
    parser.add_argument("--lego-source", default=str(LEGO), help="the Lego folder --pack-lego reads")
    parser.add_argument("--fetch-vulkan-loader", action="store_true", help="download .gl (Vulkan loader debs)")
    parser.add_argument("--probe", metavar="ARCH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.stages = [name.strip() for name in args.stages.split(",") if name.strip()]
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown:
        raise ExitError(f"unknown stage {', '.join(unknown)} in --stages: choose from {', '.join(STAGES[1:])}")
    return args


def prepare(args) -> bool:
    if args.fetch_wheels:
        fetch_wheels(Path(args.wheels), args.python_version)
    if args.pack_lego:
        pack_lego(Path(args.lego_source), args.test_views if args.test_views is not None else 10)
    if args.fetch_vulkan_loader:
        fetch_vulkan_loader()
    return travel_size()


def main() -> int:
    try:
        args = parse_args()
        if args.probe:
            probe(args.probe, Path(args.work))
            return 0
        if args.fetch_wheels or args.pack_lego or args.fetch_vulkan_loader:
            return 0 if prepare(args) else 1
        return 0 if Check(args).run() else 1
    except (ExitError, OSError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
