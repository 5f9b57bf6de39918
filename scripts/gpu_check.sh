#!/usr/bin/env bash
# Everything a session with a lent GPU runs, in one device call under 10 minutes: install, the tests
# that start CUDA, kernel and training-speed benchmarks, 2 minutes of Lego on CUDA with its PSNR,
# and the Vulkan tests on the NVIDIA driver. bench/gpu_check.py does the work; its docstring lists the
# stages and options. Results: summary.json, summary.md and a log per stage in $OUT (or --out DIR).
#
# The GPU machine has Python 3.12 with torch, numpy, opencv-python-headless, imageio, click, tqdm,
# pytest, pytest-timeout, setuptools (KINDS.md), but not the project's taichi==1.7.4, taichi's dill, or
# imageio-ffmpeg. Taichi and dill travel as wheels; imageio-ffmpeg (68 MB, video writing only) does not,
# and the tests that write videos are left out there, as summary.md says. The device call carries
#   .whl     taichi 1.7.4 cp312 (its C API taken out: 36 MB instead of 56) and dill      --fetch-wheels
#   .scenes  Lego's train split and 10 evenly spaced test views (14 MB), from
#            ../shared/data/nerf_synthetic/lego, which does not travel                   --pack-lego
#   .gl      the Vulkan and EGL loaders (debs, as the device tool's README says)         --fetch-vulkan-loader
# Make all three here, once, in the checkout the session calls from; it prints what will travel
# against the 64 MiB limit (50.5 MiB with the repository; with the full taichi wheel it would be 69):
#   bash scripts/gpu_check.sh --fetch-wheels --pack-lego --fetch-vulkan-loader
# Then the device call (tool `run`, carry [".whl", ".scenes", ".gl"], timeout_s 600):
#   for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; bash scripts/gpu_check.sh
# A dry run of the same stages on this machine, tiny (tests/test_gpu_check.py runs one):
#   bash scripts/gpu_check.sh --arch cpu --dry-run --out runs/gpu_check_dry
# With device time left after the check, issue 10's open question needs seeds, not one run a side.
# Runs side by side share the GPU well (a step is launch-bound): on an H200, 2026-11-27, seven at a
# time trained 1000 Lego steps in 80-135 s each (one alone: ~19 steps/s). Install as the install
# stage does (`--stages ""` installs only), then, say:
#   python bench/seeds.py --scene .scenes/lego --test-views 20 --arch cuda --hash-log2 17 --seeds 5 \
#       --jobs 8 --steps 1000 --variant table8e-2:table_lr=0.08 \
#       --variant ngp-table8e-2:method=ngp,table_lr=0.08 --variant ngp-table32e-2:method=ngp,table_lr=0.32 \
#       --results $OUT/seeds_cuda.jsonl
# (the table's rate became 8e-2 on 2026-11-27 and 1.6e-1 on 2026-11-28, from the CPU's 1300-step runs
# at two seeds and one 3000-step seed: every CUDA seed file in bench/results was trained with the
# table at 1e-2 and no longer describes the defaults. This asks whether hollow still leads ngp at
# the equal table over five seeds, whether both still gain from the faster table, and whether ngp
# at hollow's effective rate (table_lr / mean p, ~3e-1) matches hollow; ~6 minutes side by side on
# an H200; then with --steps 3000, where a GPU's budget is, and a fast rate may cost the end quality
# it bought at 1000; then --hash-log2 15 and 19, and faster rates still, 3.2e-1 for both methods)
# and bring the file back into the checkout (.scenes travels): the next call skips the runs in it.
set -uo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/../bench/gpu_check.py" "$@"
