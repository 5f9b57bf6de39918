"""Hash encoding: forward against a float64 torch reference, gradients against its autograd
(itself checked against finite differences), on every backend."""
import pytest
import torch

from hollow_taichi import ops
from hollow_taichi.kernels.hash_grid import PRIME_Y, PRIME_Z

torch.set_default_dtype(torch.float32)


def reference_encode(positions, table, resolutions):
    """Plain torch hash encoding in the precision of its inputs.

    The cell of a point is chosen in float32, as the kernel does, so that points on a cell boundary
    land in the same cell (the gradient with respect to position jumps there).
    """
    table_size = table.shape[1]
    out = []
    for level, resolution in enumerate(resolutions):
        clamped = positions.clamp(0.0, 1.0)
        corner = torch.floor(clamped.detach().float() * resolution).clamp(max=resolution - 1).to(positions.dtype)
        fraction = clamped * resolution - corner
        corner = corner.long()
        value = 0.0
        for corner_id in range(8):
            offset = torch.tensor([(corner_id >> d) & 1 for d in range(3)])
            vertex = corner + offset
            weight = torch.ones(positions.shape[0], dtype=positions.dtype)
            for d in range(3):
                weight = weight * (fraction[:, d] if offset[d] else 1.0 - fraction[:, d])
            if (resolution + 1) ** 3 <= table_size:
                row = vertex[:, 0] + (resolution + 1) * (vertex[:, 1] + (resolution + 1) * vertex[:, 2])
            else:
                row = (vertex[:, 0] ^ (vertex[:, 1] * PRIME_Y) ^ (vertex[:, 2] * PRIME_Z)) & (table_size - 1)
            value = value + weight[:, None] * table[level, row]
        out.append(value)
    return torch.cat(out, dim=1)


def test_reference_gradients_match_finite_differences():
    resolutions = [2, 5]
    table = torch.randn(2, 64, 2, dtype=torch.float64, requires_grad=True)
    positions = (torch.rand(6, 3, dtype=torch.float64) * 0.9 + 0.05).requires_grad_()
    assert torch.autograd.gradcheck(lambda p, t: reference_encode(p, t, resolutions), (positions, table))


def table_of(encoder, values):
    table = ops.HashTable(encoder.table_shape)
    table.write(values)
    return table


def sample_positions(n, resolutions, generator):
    """Random points, points on cell boundaries of every level, and points outside the box."""
    inside = torch.rand(n, 3, generator=generator)
    on_boundary = torch.stack(
        [torch.randint(0, r + 1, (4, 3), generator=generator).float() / r for r in resolutions]
    ).reshape(-1, 3)
    outside = torch.rand(8, 3, generator=generator) * 1.6 - 0.3
    outside[:, 0] = torch.tensor([-0.2, 1.2, -0.01, 1.01, 0.5, 0.5, 1.0, 0.0])
    return torch.cat([inside, on_boundary, outside])


@pytest.mark.parametrize("log2_table", [6, 12])  # 6: every level hashed; 12: coarse levels dense
def test_hash_encode_forward_and_gradients(arch, log2_table):
    generator = torch.Generator().manual_seed(0)
    encoder = ops.HashEncoder(levels=4, features_per_level=2, log2_table=log2_table,
                              base_resolution=3, finest_resolution=40)
    values = torch.rand(encoder.table_shape, generator=generator) * 2 - 1
    table = table_of(encoder, values)
    positions = sample_positions(200, encoder.resolutions, generator).requires_grad_()
    upstream = torch.randn(positions.shape[0], encoder.output_dim, generator=generator)

    encoding = encoder(positions, table)
    features, saliency = encoding.features.cpu(), encoding.saliency  # ops return tensors on the backend's device
    (features * upstream).sum().backward()

    table64 = values.double().requires_grad_()
    positions64 = positions.detach().double().requires_grad_()
    expected = reference_encode(positions64, table64, encoder.resolutions)
    (expected * upstream.double()).sum().backward()

    assert saliency is None
    torch.testing.assert_close(features.detach().double(), expected.detach(), atol=2e-5, rtol=1e-4)
    table_grad = table.read_grad().cpu()
    assert table_grad.abs().sum() > 0 and positions.grad.abs().sum() > 0
    torch.testing.assert_close(table_grad.double(), table64.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(positions.grad.double(), positions64.grad, atol=5e-3, rtol=1e-3)


@pytest.mark.parametrize("log2_table", [6, 12])
def test_encoding_without_gradient_matches_the_reference(arch, log2_table):
    """Under torch.no_grad the encoder runs its own kernel on torch tensors (no fields)."""
    generator = torch.Generator().manual_seed(4)
    encoder = ops.HashEncoder(levels=4, features_per_level=2, log2_table=log2_table,
                              base_resolution=3, finest_resolution=40)
    values = torch.rand(encoder.table_shape, generator=generator) * 2 - 1
    positions = sample_positions(200, encoder.resolutions, generator)
    with torch.no_grad():
        encoding = encoder(positions, table_of(encoder, values))
    expected = reference_encode(positions.double(), values.double(), encoder.resolutions)
    assert encoding.saliency is None
    torch.testing.assert_close(encoding.features.cpu().double(), expected, atol=2e-5, rtol=1e-4)


def test_hash_encode_without_position_gradient(arch):
    encoder = ops.HashEncoder(levels=2, features_per_level=2, log2_table=8, base_resolution=4,
                              finest_resolution=16)
    table = table_of(encoder, torch.randn(encoder.table_shape))
    positions = torch.rand(50, 3)
    encoder(positions, table).features.sum().backward()
    # With upstream gradient 1, each point gives each level's weights (summing to 1) to both features.
    assert table.read_grad().sum().item() == pytest.approx(50 * 2 * 2, rel=1e-4)


def test_table_gradient_accumulates_until_reset(arch):
    """Backward passes add into the table's gradient field (as torch's .grad does) until the
    optimizer step (or zero_grad) resets it."""
    encoder = ops.HashEncoder(levels=2, features_per_level=2, log2_table=8, base_resolution=4,
                              finest_resolution=16)
    table = table_of(encoder, torch.randn(encoder.table_shape))
    positions = torch.rand(30, 3)
    encoder(positions, table).features.sum().backward()
    once = table.read_grad()
    encoder(positions, table).features.sum().backward()
    torch.testing.assert_close(table.read_grad(), 2 * once)
    table.zero_grad()
    assert not table.read_grad().any()


def test_table_writes_are_seen_by_the_next_encode(arch):
    encoder = ops.HashEncoder(levels=2, features_per_level=2, log2_table=8, base_resolution=4,
                              finest_resolution=16)
    values = torch.randn(encoder.table_shape)
    table = table_of(encoder, values)
    positions = torch.rand(30, 3)
    first = encoder(positions, table).features
    table.write(2.0 * values)
    torch.testing.assert_close(encoder(positions, table).features, 2.0 * first)


def test_level_resolutions_follow_geometric_growth():
    assert ops.level_resolutions(16, 16, 2048)[0] == 16
    assert ops.level_resolutions(16, 16, 2048)[-1] == 2048
    assert ops.level_resolutions(1, 16, 2048) == [16]
