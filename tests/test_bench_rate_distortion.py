"""bench/rate_distortion.py on a tiny run: each coding's file is exported, loaded back and evaluated,
the lossless file scores what the run scored, and the table compares each file with it."""
import json

from scenes_util import SMALL_RUN, run_cli, tiny_scene


def test_measures_each_file_against_the_lossless_one(bench_script, cpu, tmp_path):
    rate_distortion = bench_script("rate_distortion")
    run = tmp_path / "run"
    result = run_cli("train", tiny_scene(tmp_path / "scene"), "--out", run, "--steps", 6, *SMALL_RUN)
    assert result.exit_code == 0, result.output
    results = tmp_path / "points.jsonl"

    rate_distortion.measure_run(run, [3], views=1, done=set(), results_path=results)
    points = [json.loads(line) for line in results.read_text().splitlines()]
    done = {(point["run"], point["bits"]) for point in points}
    rate_distortion.measure_run(run, [3], views=1, done=done, results_path=results)  # nothing new to measure

    assert [point["bits"] for point in points] == ["float32", "3"]
    assert len(results.read_text().splitlines()) == 2
    lossless, quantized = points
    assert lossless["psnr"] == json.loads((run / "metrics.json").read_text())["psnr"]
    assert quantized["bytes"] < lossless["bytes"] == (run / "model_float32.htc").stat().st_size
    rows = rate_distortion.table(points).splitlines()[2:]
    assert "float32 (lossless)" in rows[0] and "| +0.00 |" in rows[0]
    assert "3 bits" in rows[1] and f"{quantized['psnr'] - lossless['psnr']:+.2f}" in rows[1]
