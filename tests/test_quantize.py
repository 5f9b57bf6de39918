"""The compact file's quantizers: error bounds, zero kept exactly, and no logit crossing the prune threshold."""
import numpy as np
import pytest

from hollow_taichi import quantize


@pytest.mark.parametrize("bits", [2, 4, 8, 12])
def test_symmetric_codes_fit_their_bits_and_err_at_most_half_a_step_inside_the_clip(bits):
    generator = np.random.default_rng(bits)
    values = generator.standard_normal((5000, 3)).astype(np.float32) * np.array([1e-3, 1.0, 30.0], np.float32)
    values[:100] = 0.0

    codes, steps = quantize.symmetric(values, bits)
    restored = quantize.dequantize(codes, steps)

    limit = 2 ** (bits - 1) - 1
    assert codes.dtype == quantize.code_dtype(bits) and np.abs(codes).max() <= limit
    assert (restored[:100] == 0).all()
    inside = np.abs(values) <= limit * steps
    assert inside.mean() > 0.75
    assert (np.abs(restored - values)[inside] <= steps[np.nonzero(inside)[1]] / 2 * (1 + 1e-5)).all()
    # per column: the small column's step is its own, not the large one's
    assert 100 * steps[0] < steps[1] < steps[2] / 10


def test_more_bits_less_error():
    values = np.random.default_rng(0).standard_normal((20000, 2)).astype(np.float32)
    errors = [np.abs(quantize.dequantize(*quantize.symmetric(values, bits)) - values).mean() for bits in (3, 5, 8)]
    assert errors[0] > 2 * errors[1] > 4 * errors[2]


def test_clipping_beats_the_full_range_on_heavy_tails():
    values = np.random.default_rng(0).standard_t(2, size=(20000, 1)).astype(np.float32)
    codes, steps = quantize.symmetric(values, 4)
    full_step = np.abs(values).max() / 7
    full = np.clip(np.rint(values / full_step), -7, 7) * full_step
    assert steps[0] < full_step
    assert ((quantize.dequantize(codes, steps) - values) ** 2).mean() < ((full - values) ** 2).mean()


@pytest.mark.parametrize("bits", [2, 3, 8])
def test_threshold_preserving_never_crosses_the_threshold(bits):
    threshold = -4.595
    values = np.concatenate([np.random.default_rng(bits).uniform(-12, 6, 4000),
                             threshold + np.array([0.0, 1e-6, -1e-6, 1e-3, -1e-3])]).astype(np.float32)

    codes, step = quantize.threshold_preserving(values, threshold, bits)
    restored = quantize.threshold_dequantize(codes, threshold, step)

    assert codes.min() >= -(2 ** (bits - 1)) and codes.max() <= 2 ** (bits - 1) - 1
    assert np.array_equal(restored >= threshold, values >= threshold)
    assert np.abs(restored - values).max() <= step / 2 * (1 + 1e-5) + 1e-6


@pytest.mark.parametrize("bits, columns, packed", [(2, 2, True), (4, 2, True), (5, 2, False), (2, 4, True),
                                                   (3, 4, False)])
def test_row_symbols_pack_a_row_into_a_byte_where_it_fits(bits, columns, packed):
    limit = 2 ** (bits - 1) - 1
    codes = np.random.default_rng(bits).integers(-limit, limit + 1, (500, columns)).astype(quantize.code_dtype(bits))
    codes[0], codes[1] = limit, -limit

    symbols = quantize.row_symbols(codes, bits)

    assert (symbols is not None) == packed
    if packed:
        assert symbols.dtype == np.uint8 and len(np.unique(symbols)) == len(np.unique(codes, axis=0))
        assert np.array_equal(quantize.codes_of_symbols(symbols, bits, columns), codes)


def test_level_steps_fit_each_level_to_the_rows_it_addresses():
    table = np.random.default_rng(0).standard_normal((3, 64, 2)).astype(np.float32)
    table[0, 10:] = 1000.0  # rows past level 0's addressable ones must not stretch its grid
    steps = quantize.level_steps(table, [10, 64, 64], 4)
    assert steps.shape == (3, 2) and steps.dtype == np.float32
    for level, rows in enumerate([10, 64, 64]):
        assert np.array_equal(steps[level], quantize.symmetric(table[level, :rows], 4)[1])
    assert steps[0].max() < 1.0
