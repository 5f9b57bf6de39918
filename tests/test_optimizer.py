"""The optimizer's groups: the hash table's learning rate follows the saliency that scales it, and the
sparsity penalty's two forms (the constraint, the paper's L1)."""
import pytest
import torch

from hollow_taichi import ops
from hollow_taichi.admm import AdmmPruner
from hollow_taichi.config import AdmmConfig, TrainConfig
from hollow_taichi.scenes import load_scene
from hollow_taichi.trainer import HARDENED_LOGIT_RISE, MIN_SALIENCY_FOR_LR, Trainer

from scenes_util import tiny_scene


def tiny_trainer(tmp_path, method: str = "hollow", follows: bool = True, input_follows: bool = False,
                 **settings) -> Trainer:
    config = TrainConfig(scene=str(tiny_scene(tmp_path / "scene")), method=method, arch="cpu", steps=10,
                         table_lr_follows_saliency=follows, input_lr_follows_saliency=input_follows, **settings)
    config.field.log2_table, config.field.saliency_resolution = 12, 8
    return Trainer(load_scene(config.scene), config, tmp_path / "run", progress=False)


def learning_rates(trainer: Trainer) -> dict[str, float]:
    return {"table": trainer.table_optimizer.lr, **{group["name"]: group["lr"] for group in trainer.optimizer.param_groups}}


def test_table_learning_rate_is_divided_by_the_mean_saliency(tmp_path, cpu):
    trainer = tiny_trainer(tmp_path)
    trainer._set_learning_rates(torch.tensor(0.25))
    table_lr = trainer.config.table_lr
    assert learning_rates(trainer)["table"] == pytest.approx(4 * table_lr)
    trainer._set_learning_rates(torch.tensor(1e-4))  # a collapsed saliency does not blow the rate up
    assert learning_rates(trainer)["table"] == pytest.approx(table_lr / MIN_SALIENCY_FOR_LR)


def test_the_density_mlps_first_layer_can_follow_the_saliency_too(tmp_path, cpu):
    """input_lr_follows_saliency: the first layer (which reads v = p f) gets the table's factor; the
    rest of the MLPs keep the schedule's rate, and every MLP parameter is in exactly one group."""
    trainer = tiny_trainer(tmp_path, input_follows=True)
    trainer._set_learning_rates(torch.tensor(0.25))
    rates = learning_rates(trainer)
    assert rates["mlp_input"] == pytest.approx(4 * rates["mlp"]) == pytest.approx(4 * trainer.config.lr)
    groups = {group["name"]: group["params"] for group in trainer.optimizer.param_groups}
    assert groups["mlp_input"] == [trainer.field.density_mlp[0].weight]
    grouped = [id(parameter) for name in ("mlp", "mlp_input") for parameter in groups[name]]
    assert sorted(grouped) == sorted(id(parameter) for parameter in trainer.field.mlp_parameters())


@pytest.mark.parametrize("method, follows", [("hollow", False), ("ngp", True)])
def test_table_learning_rate_is_the_schedule_without_saliency_following(tmp_path, cpu, method, follows):
    trainer = tiny_trainer(tmp_path, method, follows)
    trainer._set_learning_rates(torch.tensor(0.25) if method == "hollow" else None)
    rates = learning_rates(trainer)
    assert (rates["table"], rates["mlp"]) == (trainer.config.table_lr, trainer.config.lr)


def test_table_and_mlps_follow_their_own_rates_and_one_schedule(tmp_path, cpu):
    """table_lr and lr set the two rates apart; the schedule's decay scales both alike."""
    trainer = tiny_trainer(tmp_path, "ngp", lr=3e-3, table_lr=5e-2)
    trainer.step = trainer.config.steps  # the end of the budget: the decay is lr_final_fraction
    trainer._apply_schedule()
    trainer._set_learning_rates(None)
    final = trainer.config.lr_final_fraction
    assert learning_rates(trainer) == pytest.approx({"table": 5e-2 * final, "mlp": 3e-3 * final})


def test_a_training_step_reports_the_mean_saliency_it_trained_through(tmp_path, cpu):
    trainer = tiny_trainer(tmp_path)
    with torch.no_grad():
        trainer.field.saliency_logits.fill_(0.0)  # p = 0.5 everywhere
    trainer.train_step()
    assert trainer.table_lr_scale == pytest.approx(2.0, rel=1e-4)


def test_l1_penalty_is_its_weight_times_the_mean_saliency_and_has_no_dual():
    pruner = AdmmPruner(AdmmConfig(penalty="l1", l1_weight=0.5))
    saliency = torch.full((4, 4, 4), 0.2, requires_grad=True)
    penalty = pruner.penalty(saliency)
    pruner.dual_update()
    assert penalty.item() == pytest.approx(0.1)
    assert pruner.state.gamma == 0.0 and pruner.state.sparsity == pytest.approx(0.2)


def test_saliency_logits_stop_when_the_penalty_stops_pushing(tmp_path, cpu):
    """No momentum on the logits: once S <= C no push is left, and Adam must not coast them on (with
    momentum 0.9 and second-moment decay 0.9 a logit coasted ~20 steps at full rate, about one logit
    further down: the pruner overshot its constraint, measured on Lego)."""
    trainer = tiny_trainer(tmp_path)
    logits = trainer.field.saliency_logits
    for _ in range(5):
        trainer.optimizer.zero_grad()
        logits.grad = torch.ones_like(logits)  # the penalty pushes every logit down
        trainer.optimizer.step()
    before = logits.detach().clone()
    trainer.optimizer.zero_grad()
    logits.grad = torch.zeros_like(logits)  # the constraint is met: nothing pushes
    trainer.optimizer.step()
    assert torch.equal(logits.detach(), before)


def test_hardening_raises_the_kept_saliency_and_stops_the_pruner(tmp_path, cpu):
    """admm.harden_start 0.2 and harden_length 0.3 of 10 steps: from step 2 the logits no longer train
    and the penalty stops; over steps 2-5 the kept logits (p >= the prune threshold) rise by
    HARDENED_LOGIT_RISE in all, the pruned ones stay, so the kept set is what it was."""
    trainer = tiny_trainer(tmp_path)
    trainer.config.admm.harden_start, trainer.config.admm.harden_length = 0.2, 0.3
    logits = trainer.field.saliency_logits
    with torch.no_grad():
        logits[: logits.shape[0] // 2] = -6.0  # p = 0.0025: below the prune threshold 0.01
    for _ in range(2):
        trainer.train_step()
    assert trainer.admm_active() is False and trainer.hardening()
    before = logits.detach().clone()
    kept = torch.sigmoid(before) >= trainer.config.admm.prune_threshold
    assert 0 < int(kept.sum()) < kept.numel()
    for _ in range(4):
        trainer.train_step()
    assert trainer.hardened == 1.0
    assert torch.allclose(logits.detach()[kept], before[kept] + HARDENED_LOGIT_RISE)
    assert torch.equal(logits.detach()[~kept], before[~kept])
    assert learning_rates(trainer)["saliency"] == 0.0


def test_table_adam_matches_torch_adam_and_resets_the_gradient(arch):
    """The table's in-place Adam kernel against torch.optim.Adam on the same values and gradients,
    over steps whose learning rate changes (the schedule sets it each step), zero-gradient entries
    included (they still move on their first moment)."""
    generator = torch.Generator().manual_seed(0)
    shape = (2, 64, 2)
    table = ops.HashTable(shape)
    values = torch.randn(shape, generator=generator)
    table.write(values)
    reference = values.clone().requires_grad_()
    torch_adam = torch.optim.Adam([reference], lr=1e-2, betas=(0.9, 0.99), eps=1e-15)
    table_adam = ops.TableAdam(table, 1e-2, (0.9, 0.99), 1e-15)
    encoder_like_gradient = ops.HashEncoder(levels=2, features_per_level=2, log2_table=6, base_resolution=2,
                                            finest_resolution=8)
    for step, lr in enumerate([1e-2, 1e-2, 5e-3, 2e-2]):
        positions = torch.rand(20, 3, generator=generator)
        upstream = torch.randn(20, encoder_like_gradient.output_dim, generator=generator)
        if step == 2:
            upstream.zero_()  # a step that touches nothing
        table.write(reference.detach())
        encoder_like_gradient(positions, table).features.cpu().backward(upstream)  # ops return the device's tensors
        reference.grad = table.read_grad().cpu()
        for group in torch_adam.param_groups:
            group["lr"] = lr
        table_adam.lr = lr
        torch_adam.step()
        table_adam.step()
        torch.testing.assert_close(table.read().cpu(), reference.detach(), atol=1e-6, rtol=1e-5)
        assert not table.read_grad().any()
    torch.testing.assert_close(table_adam.second_moment.cpu(), torch_adam.state[reference]["exp_avg_sq"])


def test_quantized_table_adam_trains_a_latent_table_and_the_table_reads_its_grid(arch):
    """Quantization-aware training: the latent moves as torch's Adam moves a tensor under the same
    gradients (which the table, on its grid, received: straight through), stays within half a step
    of the grid's ends, and the table is the latent rounded to the grid, codes within 3 bits."""
    generator = torch.Generator().manual_seed(1)
    shape = (2, 64, 2)
    table = ops.HashTable(shape)
    values = torch.randn(shape, generator=generator)
    table.write(values)
    grid = torch.tensor([[0.1, 0.2], [0.05, 0.3]])
    reach = 3.5 * grid[:, None, :]
    table_adam = ops.TableAdam(table, 5e-2, (0.9, 0.99), 1e-15)
    table_adam.quantize(grid, bits=3)
    torch.testing.assert_close(table.read().cpu(), (values / grid[:, None, :]).round().clamp(-3, 3) * grid[:, None, :])
    reference = values.clone().requires_grad_()
    torch_adam = torch.optim.Adam([reference], lr=5e-2, betas=(0.9, 0.99), eps=1e-15)
    for _ in range(4):
        gradient = torch.randn(shape, generator=generator)
        table.field.grad.from_torch(gradient.to(table_adam.latent.device))
        reference.grad = gradient
        torch_adam.step()
        with torch.no_grad():
            reference.copy_(torch.maximum(torch.minimum(reference, reach), -reach))
        table_adam.step()
        torch.testing.assert_close(table_adam.latent.cpu(), reference.detach(), atol=1e-6, rtol=1e-5)
        codes = table.read().cpu() / grid[:, None, :]
        assert torch.equal(codes, (reference.detach() / grid[:, None, :]).round().clamp(-3, 3))
        assert not table.read_grad().any()
    assert (reference.detach().abs() > 3 * grid[:, None, :]).any()  # some entries sat past the grid's ends
