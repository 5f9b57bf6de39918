"""TrainConfig.override: `train --set KEY=VALUE` reaches any setting, typed as the setting is; and
configurations saved by earlier versions load as they trained."""
import pytest

from hollow_taichi.config import TrainConfig
from hollow_taichi.errors import RunError


@pytest.mark.parametrize("assignment, read, expected", [
    ("lr_saliency=0", lambda c: c.lr_saliency, 0.0),
    ("field.gate=off", lambda c: c.field.gate, "off"),
    ("admm.sparsity = 0.1", lambda c: c.admm.sparsity, 0.1),
    ("occupancy_resolution=64", lambda c: c.occupancy_resolution, 64),
    ("mark_unseen=false", lambda c: c.mark_unseen, False),
    ("table_lr_follows_saliency=1", lambda c: c.table_lr_follows_saliency, True),
    ("threads=none", lambda c: c.threads, None),
    ("field.saliency_init=30", lambda c: c.field.saliency_init, 30.0),
])
def test_override_sets_the_named_setting_with_its_type(assignment, read, expected):
    config = TrainConfig(steps=1)
    config.override(assignment)
    value = read(config)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("assignment, message", [
    ("lr_saliency", "expected KEY=VALUE"),
    ("no_such=1", "no setting 'no_such'"),
    ("field=1", "no setting 'field'"),
    ("scene.x=1", "no setting 'scene.x'"),
    ("admm.rho=fast", "'fast' is not a valid float"),
    ("occupancy_resolution=1.5", "'1.5' is not a valid int"),
    ("mark_unseen=maybe", "'maybe' is not a valid bool"),
])
def test_override_refuses_unknown_settings_and_bad_values(assignment, message):
    with pytest.raises(RunError, match=message):
        TrainConfig(steps=1).override(assignment)


@pytest.mark.parametrize("assignment, message", [
    ("admm.harden_start=0.05", r"admm.harden_start must be in \[admm.warmup_fraction, 1\), got 0.05"),
    ("admm.harden_start=1", r"admm.harden_start must be in \[admm.warmup_fraction, 1\), got 1.0"),
    ("admm.harden_length=0", "admm.harden_length must be positive, got 0.0"),
    ("occupancy_sample_fraction=0", r"occupancy_sample_fraction must be in \(0, 1\], got 0.0"),
    ("occupancy_sample_fraction=1.5", r"occupancy_sample_fraction must be in \(0, 1\], got 1.5"),
])
def test_validate_refuses_a_hardening_outside_the_budget_and_a_fraction_outside_0_1(assignment, message):
    config = TrainConfig(steps=1)
    config.override(assignment)
    with pytest.raises(RunError, match=message):
        config.validate()


def test_a_configuration_saved_before_table_lr_trains_its_table_at_lr():
    """Old runs' config.json has no table_lr: their table trained at lr, and resuming keeps it so;
    a saved table_lr is kept as it is."""
    saved = TrainConfig(steps=1, lr=3e-3).to_dict()
    assert TrainConfig.from_dict(saved).table_lr == TrainConfig().table_lr != 3e-3
    del saved["table_lr"]
    assert TrainConfig.from_dict(saved).table_lr == 3e-3


def test_a_configuration_saved_before_occupancy_sample_fraction_samples_every_cell_again():
    """Old runs' config.json has no occupancy_sample_fraction: their refreshes sampled all of
    Instant-NGP's cells, and resuming keeps it so; a new configuration's None follows the batch."""
    saved = TrainConfig(steps=1).to_dict()
    assert TrainConfig.from_dict(saved).occupancy_sample_fraction is None
    del saved["occupancy_sample_fraction"]
    assert TrainConfig.from_dict(saved).occupancy_sample_fraction == 1.0


def test_the_occupancy_upkeep_follows_the_batch_unless_set():
    """None: the batch's share of Instant-NGP's 2^18 samples a step, at most 1; a value is kept."""
    from hollow_taichi.trainer import occupancy_sample_fraction

    assert occupancy_sample_fraction(TrainConfig(steps=1, batch_samples=1 << 16)) == 0.25
    assert occupancy_sample_fraction(TrainConfig(steps=1, batch_samples=1 << 20)) == 1.0
    assert occupancy_sample_fraction(TrainConfig(steps=1, occupancy_sample_fraction=0.5)) == 0.5
