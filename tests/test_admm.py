"""The ADMM pruner on its own: the dual variable rises while the constraint mean(sigmoid(G)) <= C is
violated, and descent on the augmented Lagrangian (with a competing term that wants saliency up)
ends with the constraint met within tolerance."""
import torch

from hollow_taichi.admm import AdmmPruner, kept_cells
from hollow_taichi.config import AdmmConfig


def test_dual_rises_while_violated_and_constraint_is_met():
    config = AdmmConfig(sparsity=0.1, rho=1.0, dual_step=0.2)
    pruner = AdmmPruner(config)
    logits = torch.zeros(8, 8, 8, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.05)
    wanted = torch.zeros(8, 8, 8, dtype=torch.bool)
    wanted[:2] = True  # a quarter of the cells would like saliency 1: more than C allows
    gammas = []
    for _ in range(1500):
        saliency = torch.sigmoid(logits)
        fit = (saliency[wanted] - 1).square().mean()
        loss = fit + pruner.penalty(saliency)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        pruner.dual_update()
        gammas.append(pruner.state.gamma)
    assert gammas[50] > gammas[10] > 0  # S started at 0.5 > C: the dual ascends
    assert pruner.state.sparsity <= config.sparsity + 0.01
    assert torch.sigmoid(logits[~wanted]).max() < 0.05  # the unwanted cells are what was pruned


def test_kept_cells_bound_the_saliency_inside():
    logits = torch.full((3, 3, 3), -8.0)
    logits[0, 0, 0] = 3.0
    kept = kept_cells(logits, threshold=0.01)
    assert kept.shape == (2, 2, 2)
    assert kept[0, 0, 0] and kept.sum() == 1  # only the cell with that corner can reach 0.01
