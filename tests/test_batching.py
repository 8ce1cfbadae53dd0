"""The effective batch is the recipe; micro-batch and accumulation are derived from the process count."""

import pytest

from harness.train.batching import plan


@pytest.mark.parametrize("processes", [1, 2, 4, 8])
def test_effective_batch_is_kept_across_process_counts(processes):
    p = plan(32, per_device_max=2, processes=processes)
    assert p.per_device * p.accumulation * p.processes == 32
    assert p.per_device <= 2


def test_largest_micro_batch_that_fits_is_used():
    assert (plan(32, 8, 1).per_device, plan(32, 8, 1).accumulation) == (8, 4)
    assert (plan(32, 3, 1).per_device, plan(32, 3, 1).accumulation) == (2, 16)  # 3 does not divide 32


def test_indivisible_batch_names_the_values():
    with pytest.raises(ValueError, match="effective_batch_size=32 is not divisible by the 3 training processes"):
        plan(32, 1, 3)
