"""bench/hollow_vs_ngp.py's tables over several seeds: each hollow run is compared with ngp at its own
seed (equal table and the paper's pairing), and the plot's points are means over the seeds."""
import pytest


@pytest.fixture(scope="module")
def comparison(bench_script):
    return bench_script("hollow_vs_ngp")


def result(method: str, log2_table: int, seed: int, psnr: float) -> dict:
    hollow = method == "hollow"
    return {"method": method, "log2_table": log2_table, "seed": seed, "psnr": psnr, "ssim": 0.95, "steps": 1300,
            "train_seconds": 600.0, "params_total": 1000 * 2 ** (log2_table - 15) + (100 if hollow else 0),
            "params_effective": 800 * 2 ** (log2_table - 15) if hollow else 1000 * 2 ** (log2_table - 15),
            "marched_per_ray": 20.0, "sparsity": 0.02 if hollow else None, "kept_cells": 0.07 if hollow else None}


RESULTS = [result("ngp", 17, 0, 30.0), result("ngp", 17, 1, 29.0), result("hollow", 17, 1, 29.5),
           result("hollow", 17, 0, 30.1), result("hollow", 16, 0, 29.8), result("hollow", 16, 1, 29.1)]


def test_equal_table_rows_compare_with_ngp_at_the_same_seed(comparison):
    rows = comparison.equal_table(RESULTS, "machine", "command").splitlines()[4:]
    gains = {(row.split(" | ")[1], row.split(" | ")[2], row.split(" | ")[0]): row.split(" | ")[7] for row in rows}
    assert gains[("hollow", "0", "| 2^17")] == "+0.10"
    assert gains[("hollow", "1", "| 2^17")] == "+0.50"
    assert gains[("hollow", "0", "| 2^16")] == "-"  # no ngp at 2^16


def test_pairing_pairs_half_the_table_by_seed(comparison):
    rows = comparison.pairing_table(RESULTS).splitlines()[2:]
    assert [(row.split(" | ")[0], row.split(" | ")[-1]) for row in rows] == [("| 0", "-0.20 |"), ("| 1", "+0.10 |")]


def test_plot_points_are_means_over_seeds(comparison):
    assert comparison.seed_means(RESULTS, "hollow", "params_total") == [
        (2100.0, pytest.approx(29.45), 16), (4100.0, pytest.approx(29.8), 17)]
    assert comparison.seed_means(RESULTS, "ngp", "params_total") == [(4000.0, pytest.approx(29.5), 17)]
