"""What each part of HollowNeRF, and each place where we differ from the paper, does to test PSNR.

  python bench/hollow_ablation.py [--scene builtin | --scene path/to/nerf_synthetic/lego]
                                  [--downscale 4] [--hash-log2 15] [--batch-samples 8192] [--steps 300]
                                  [--variant ngp --variant hollow ...] [--test-views 5] [--record]

Every variant trains from scratch in its own process with the same seed, table size and step
budget; it changes only what its row says. The first group builds HollowNeRF up from Instant-NGP
(saliency grid alone, then with the gate or the pruner, then all three as before issue 10, then
with the table's learning rate following the saliency, then today's default); the second changes
one thing of the default to what the paper did. "PSNR - ngp" compares with the ngp row of the same run. With
--record the table goes to BENCHMARKS.md, one section per scene, table size and budget.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (COMPARISON_HEADER, comparison_columns, machine_description,  # noqa: E402
                    measure_in_subprocess, model_measurements, train_and_evaluate, write_section)

NO_PRUNER = 1.0  # C = 1: S <= 1 always holds, so the penalty and the dual stay zero


def _ngp(config):
    config.method = "ngp"


def _saliency_only(config):
    config.field.gate, config.admm.sparsity, config.table_lr_follows_saliency = "off", NO_PRUNER, False


def _saliency_and_gate(config):
    config.admm.sparsity, config.table_lr_follows_saliency = NO_PRUNER, False


def _saliency_and_pruner(config):
    config.field.gate, config.table_lr_follows_saliency = "off", False


def _hollow_before(config):
    _pruner_before(config)
    config.table_lr_follows_saliency = False


def _pruner_before(config):
    config.saliency_beta1, config.admm.dual_step = 0.9, 1e-3


def _default(config):
    pass


def _paper_init(config):
    config.field.saliency_init = 1.0


def _paper_gate(config):
    config.field.gate = "gradient"


def _paper_finest(config):
    config.field.finest_resolution = 1024


def _paper_admm(config):
    config.admm.rho = config.admm.dual_step = 1.0


def _paper_l1(config):
    config.admm.penalty = "l1"


VARIANTS = {
    "ngp": ("Instant-NGP (--method ngp)", _ngp),
    "saliency": ("+ saliency grid only (no gate, no pruner)", _saliency_only),
    "saliency+gate": ("+ saliency grid and gate (no pruner)", _saliency_and_gate),
    "saliency+pruner": ("+ saliency grid and ADMM pruner (no gate)", _saliency_and_pruner),
    "hollow-before": ("all three as before issue 10 (logit momentum 0.9, dual step 1e-3)", _hollow_before),
    "lr-follows": ("hollow-before, but table lr / mean saliency", _pruner_before),
    "hollow": ("the default: lr-follows, no logit momentum, dual step 1e-5", _default),
    "paper-init": ("default, but G starts at logit 1 (paper) instead of 2", _paper_init),
    "paper-gate": ("default, but the gate passes its gradient (paper)", _paper_gate),
    "paper-finest": ("default, but finest resolution 1024 (paper) instead of 2048", _paper_finest),
    "paper-admm": ("default, but rho = dual step = 1 (paper's (5) with one rho_gamma)", _paper_admm),
    "paper-l1": ("default, but L1 penalty 0.05 * S instead of the constraint (paper's alternative)", _paper_l1),
}


def train_one(scene: str, downscale: int, log2_table: int, batch_samples: int, steps: int, variant: str,
              arch: str, test_views: int) -> dict:
    """Train one variant in this process and measure it."""
    from hollow_taichi.config import TrainConfig
    from hollow_taichi.scenes import builtin_scene_path

    config = TrainConfig(scene=scene if scene != "builtin" else str(builtin_scene_path()), arch=arch, steps=steps,
                         downscale=downscale, batch_samples=batch_samples, eval_interval=0, checkpoint_interval=0)
    config.field.log2_table = log2_table
    VARIANTS[variant][1](config)
    trainer, test, measured = train_and_evaluate(config, test_views)
    return {"variant": variant, **measured, **model_measurements(trainer.renderer, config, test)}


def table(results: list[dict], machine: str, command: str) -> str:
    ngp = next((r for r in results if r["variant"] == "ngp"), None)
    lines = [
        f"Machine: {machine}. Command: `{command}`.",
        "",
        f"| variant | what changes | test PSNR (dB) | SSIM | {COMPARISON_HEADER} |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['variant']} | {VARIANTS[r['variant']][0]} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                     f"{comparison_columns(r, ngp)} |")
    return "\n".join(lines)


@click.command()
@click.option("--scene", default="builtin", show_default=True, help="builtin, or a scene folder.")
@click.option("--downscale", type=int, default=4, show_default=True)
@click.option("--hash-log2", "log2_table", type=int, default=15, show_default=True)
@click.option("--batch-samples", type=int, default=8192, show_default=True, help="Samples per training step.")
@click.option("--steps", type=int, default=300, show_default=True, help="Training steps of every run.")
@click.option("--variant", "variants", type=click.Choice(list(VARIANTS)), multiple=True,
              help="Variants to run (default: all).")
@click.option("--arch", default="cpu", show_default=True)
@click.option("--test-views", type=int, default=0, show_default=True, help="0: all test views.")
@click.option("--record", is_flag=True, help="Write the table to BENCHMARKS.md.")
@click.option("--one", type=click.Choice(list(VARIANTS)), hidden=True, help="Train this variant only (internal).")
def main(scene, downscale, log2_table, batch_samples, steps, variants, arch, test_views, record, one):
    if one:
        click.echo(json.dumps(train_one(scene, downscale, log2_table, batch_samples, steps, one, arch, test_views)))
        return
    variants = variants or tuple(VARIANTS)
    results = []
    for variant in variants:
        arguments = [variant, "--scene", scene, "--downscale", str(downscale), "--hash-log2", str(log2_table),
                     "--batch-samples", str(batch_samples), "--steps", str(steps), "--arch", arch,
                     "--test-views", str(test_views)]
        results.append(measure_in_subprocess(__file__, arguments))
        click.echo(json.dumps(results[-1]), err=True)
    chosen = "" if variants == tuple(VARIANTS) else "".join(f" --variant {v}" for v in variants)
    command = (f"python bench/hollow_ablation.py --scene {scene} --downscale {downscale} --hash-log2 {log2_table} "
               f"--batch-samples {batch_samples} --steps {steps}{chosen} --arch {arch} --test-views {test_views}")
    text = table(results, machine_description(results[0]["arch"]), command)
    click.echo(text)
    if record:
        name = Path(scene).name
        write_section(f"hollow_ablation_{name}_{log2_table}_{steps}",
                      f"## HollowNeRF ablation: {name}, 2^{log2_table} table, {batch_samples} samples a step, "
                      f"{steps} steps ({arch})\n\n{text}")


if __name__ == "__main__":
    main()
