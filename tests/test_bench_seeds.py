"""bench/seeds.py's arithmetic: a setting's difference from ngp at the same seed, averaged over the
seeds with its standard error, and the variants it parses."""
import click
import pytest


@pytest.fixture(scope="module")
def seeds(bench_script):
    return bench_script("seeds")


def result(name: str, seed: int, psnr: float, settings=()) -> dict:
    return {"name": name, "method": "ngp" if name == "ngp" else "hollow", "seed": seed, "settings": list(settings),
            "psnr": psnr, "ssim": 0.9}


def test_differences_from_ngp_pair_by_seed_with_their_standard_error(seeds):
    results = [result("ngp", 0, 29.0), result("ngp", 1, 29.4), result("hollow", 1, 29.2), result("hollow", 0, 28.5),
               result("input", 0, 29.1, ["input_lr_follows_saliency=true"])]
    rows = {line.split(" | ")[0][2:]: line for line in seeds.summary_table(results, ["ngp", "hollow", "input"]).splitlines()[2:]}
    assert rows["hollow"] == "| hollow | defaults | 2 | 28.85 | 0.9000 | -0.35 +- 0.15 | -0.50 / -0.20 |"
    assert rows["input"] == "| input | `input_lr_follows_saliency=true` | 1 | 29.10 | 0.9000 | +0.10 | +0.10 |"
    assert rows["ngp"].endswith("| - | - |")


def test_variants_name_their_settings_and_bad_ones_are_refused(seeds):
    assert seeds.parse_variant("lr:lr=0.02, admm.sparsity=0.1") == ("lr", ["lr=0.02", "admm.sparsity=0.1"])
    runs = seeds.runs_to_make(2, [("lr", ["lr=0.02"])])
    assert [(run["name"], run["seed"]) for run in runs] == [("ngp", 0), ("hollow", 0), ("lr", 0),
                                                            ("ngp", 1), ("hollow", 1), ("lr", 1)]
    for text in ("lr=0.02", "ngp:lr=0.02", "lr:"):
        with pytest.raises(click.BadParameter):
            seeds.parse_variant(text)
