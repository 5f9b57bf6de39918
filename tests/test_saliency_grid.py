"""Saliency scaling v = sigmoid(trilerp(G, x)) * hash(x) against a float64 torch reference, every backend."""
import torch

from hollow_taichi import ops

from test_hash_grid import reference_encode, table_of


def reference_scale(positions, features, logits):
    resolution = logits.shape[0]
    clamped = positions.clamp(0.0, 1.0)
    # The cell is chosen in float32 as in the kernel, so points on cell faces land alike.
    corner = torch.floor(clamped.float() * (resolution - 1)).clamp(max=resolution - 2).to(positions.dtype)
    fraction = clamped * (resolution - 1) - corner
    corner = corner.long()
    logit = 0.0
    for corner_id in range(8):
        offset = [(corner_id >> d) & 1 for d in range(3)]
        weight = torch.ones(positions.shape[0], dtype=positions.dtype)
        for d in range(3):
            weight = weight * (fraction[:, d] if offset[d] else 1.0 - fraction[:, d])
        logit = logit + weight * logits[corner[:, 0] + offset[0], corner[:, 1] + offset[1], corner[:, 2] + offset[2]]
    saliency = torch.sigmoid(logit)
    return saliency[:, None] * features, saliency


def test_reference_gradients_match_finite_differences():
    positions = torch.rand(5, 3, dtype=torch.float64) * 0.9 + 0.05
    features = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    logits = torch.randn(3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, g: reference_scale(positions, f, g)[0], (features, logits))


def test_saliency_scaled_encoding_forward_and_gradients(arch):
    """The encoder with logits: v = sigmoid(trilerp(G, x)) * hash(x), gradients to table, logits and
    positions (through both the hash features and the saliency)."""
    generator = torch.Generator().manual_seed(1)
    resolution = 5
    encoder = ops.HashEncoder(levels=3, features_per_level=2, log2_table=8, base_resolution=3,
                              finest_resolution=20)
    values = torch.rand(encoder.table_shape, generator=generator) * 2 - 1
    table = table_of(encoder, values)
    positions = torch.cat([
        torch.rand(300, 3, generator=generator) * 0.98 + 0.01,
        torch.tensor([[-0.5, 0.5, 0.5], [1.5, 0.2, 0.9], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]),  # outside, corners
    ]).requires_grad_()
    logits = (torch.randn(resolution, resolution, resolution, generator=generator) * 2).requires_grad_()
    upstream = torch.randn(positions.shape[0], encoder.output_dim, generator=generator)

    encoding = encoder(positions, table, logits)
    scaled, saliency = encoding.features.cpu(), encoding.saliency.cpu()  # ops return tensors on the backend's device
    (scaled * upstream).sum().backward()

    table64 = values.double().requires_grad_()
    logits64 = logits.detach().double().requires_grad_()
    positions64 = positions.detach().double().requires_grad_()
    features64 = reference_encode(positions64, table64, encoder.resolutions)
    expected, expected_saliency = reference_scale(positions64, features64, logits64)
    (expected * upstream.double()).sum().backward()

    torch.testing.assert_close(scaled.detach().double(), expected.detach(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(saliency.double(), expected_saliency.detach(), atol=1e-6, rtol=1e-5)
    table_grad = table.read_grad().cpu()
    assert logits.grad.abs().sum() > 0 and table_grad.abs().sum() > 0 and positions.grad.abs().sum() > 0
    torch.testing.assert_close(table_grad.double(), table64.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits.grad.double(), logits64.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(positions.grad.double(), positions64.grad, atol=5e-3, rtol=1e-3)


def test_saliency_scaled_encoding_without_gradient_matches_the_reference(arch):
    """Under torch.no_grad one kernel gives v and p on torch tensors; encoder.saliency gives p."""
    generator = torch.Generator().manual_seed(2)
    encoder = ops.HashEncoder(levels=3, features_per_level=2, log2_table=8, base_resolution=3,
                              finest_resolution=20)
    values = torch.rand(encoder.table_shape, generator=generator) * 2 - 1
    positions = torch.cat([torch.rand(300, 3, generator=generator), torch.tensor([[-0.5, 0.5, 1.5], [1.0, 1.0, 1.0]])])
    logits = torch.randn(5, 5, 5, generator=generator) * 2
    table = table_of(encoder, values)
    with torch.no_grad():
        encoding = encoder(positions, table, logits)
    features64 = reference_encode(positions.double(), values.double(), encoder.resolutions)
    expected, expected_saliency = reference_scale(positions.double(), features64, logits.double())
    torch.testing.assert_close(encoding.features.cpu().double(), expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(encoding.saliency.cpu().double(), expected_saliency, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(encoder.saliency(positions, logits).cpu().double(), expected_saliency,
                               atol=1e-6, rtol=1e-5)


def test_pruned_cells_encode_to_zero_alike_with_and_without_gradient(arch):
    """With kept cells, v is zero in every cell they clear: the no-grad kernel applies them itself,
    the differentiable path masks in torch (ops.kept_at); both must prune the same points, those
    on cell faces and outside the cube included, and leave p as it was."""
    generator = torch.Generator().manual_seed(3)
    encoder = ops.HashEncoder(levels=3, features_per_level=2, log2_table=8, base_resolution=3,
                              finest_resolution=20)
    values = torch.rand(encoder.table_shape, generator=generator) * 2 - 1
    faces = torch.tensor([[0.25, 0.5, 0.75], [0.5, 0.25, 0.0], [1.0, 1.0, 1.0], [-0.5, 0.5, 1.5]])
    positions = torch.cat([torch.rand(400, 3, generator=generator), faces])
    logits = torch.randn(5, 5, 5, generator=generator)
    kept = torch.rand(4, 4, 4, generator=generator) < 0.5
    table = table_of(encoder, values)
    with torch.no_grad():
        plain = encoder(positions, table, logits)
        kept = kept.to(plain.features.device)  # the backend's device, where the field keeps its cells
        pruned = encoder(positions, table, logits, kept=kept)
    differentiable = encoder(positions, table, logits.requires_grad_(), kept=kept)
    in_kept = ops.kept_at(positions, kept).cpu()
    assert 50 < int(in_kept.sum()) < 350  # both kinds of point, so the test can tell
    expected = plain.features.cpu() * in_kept[:, None]
    torch.testing.assert_close(pruned.features.cpu(), expected, atol=0, rtol=0)
    torch.testing.assert_close(differentiable.features.detach().cpu(), expected, atol=1e-6, rtol=1e-5)
    assert torch.equal(pruned.saliency, plain.saliency)
