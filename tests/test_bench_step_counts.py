"""bench/step_counts.py: the harness counts exactly the launches, operators and host reads a block
makes, and counts a few steps of a real training run."""
import taichi as ti
import torch


def test_counts_exactly_what_a_block_does(bench_script, cpu):
    step_counts = bench_script("step_counts")

    @ti.kernel
    def fill(values: ti.types.ndarray(ndim=1)):
        for i in range(values.shape[0]):
            values[i] = i

    values = torch.zeros(8)
    fill(values)  # compiled outside the count
    counts = step_counts.Counts()
    with step_counts.counting(counts):
        fill(values)
        fill(values)
        total = values.sum()
        for _ in range(3):
            total.item()
        picked = values[values > 3]
        values[values > 6] = 0.0
    assert counts.launches == 2
    assert counts.host_reads == {"_local_scalar_dense": 3, "index": 1, "index_put_": 1}
    assert counts.operators["sum"] == 1 and counts.operators["gt"] == 2
    assert picked.tolist() == [4.0, 5.0, 6.0, 7.0]


def test_counts_training_steps(bench_script, cpu):
    step_counts = bench_script("step_counts")
    result = step_counts.count_training_steps("builtin:sphere", "hollow", warmup=3, steps=2)
    assert result["counted_steps"] == "4-5"
    assert result["launches"] > 10 and result["operators"] > 100
    assert result["host_reads_by_kind"]["_local_scalar_dense"] >= 1  # the step's loss, read for its report
    assert "| hollow | 4-5 |" in step_counts.table([result])
