"""The blocked exact search: its grouped per-block selection and the two-way pass BUCC mining uses."""

import numpy as np
import pytest
import torch

from stilts.eval.search import SELECTION_GROUP, _block_top_k, _even_step, knn, knn_both_ways
from tests.vectors import brute_knn, unit_rows


@pytest.mark.parametrize("dim", [0, 1])
@pytest.mark.parametrize("size", [SELECTION_GROUP * 5, SELECTION_GROUP * 9 + 17, SELECTION_GROUP * 2])
@pytest.mark.parametrize("k", [1, 4, 7])
def test_block_top_k_equals_topk(dim, size, k) -> None:
    """Grouped selection (with and without a ragged tail, and where there are too few groups to group)
    returns what a full topk returns, along either axis."""
    shape = (size, 37) if dim == 0 else (37, size)
    block = torch.from_numpy(np.random.default_rng(size + k).standard_normal(shape).astype(np.float32))
    scores, positions = _block_top_k(block, k, dim)
    expected_scores, expected_positions = block.topk(k, dim=dim)
    torch.testing.assert_close(scores, expected_scores)
    assert torch.equal(positions, expected_positions)


def test_block_top_k_finds_best_entries_packed_in_one_group() -> None:
    """All k best candidates in one group and the rest in another: the proof's edge case."""
    block = torch.zeros(2, SELECTION_GROUP * 6)
    block[0, 5:9] = torch.tensor([4.0, 3.0, 2.0, 1.0])  # group 0 holds all four
    block[1, -3:] = torch.tensor([9.0, 8.0, 7.0])  # the last group holds three
    block[1, 0] = 6.0
    scores, positions = _block_top_k(block, 4, dim=1)
    assert positions.tolist() == [[5, 6, 7, 8], [block.shape[1] - 3, block.shape[1] - 2, block.shape[1] - 1, 0]]
    assert scores.tolist() == [[4.0, 3.0, 2.0, 1.0], [9.0, 8.0, 7.0, 6.0]]


@pytest.mark.parametrize(("n_queries", "n_keys", "chunk_size"), [(300, 700, 256), (700, 300, 4096), (129, 1000, 97)])
def test_knn_both_ways_is_both_searches(n_queries, n_keys, chunk_size) -> None:
    """One pass gives exactly the neighbours of each query among the keys and of each key among the
    queries, at block sizes that leave several blocks and groups per side."""
    queries, keys = unit_rows(1, n_queries, 24), unit_rows(2, n_keys, 24)
    (forward_scores, forward), (backward_scores, backward) = knn_both_ways(
        queries, keys, 4, 6, chunk_size=chunk_size, backend="torch"
    )
    expected_forward_scores, expected_forward = brute_knn(queries, keys, 4)
    expected_backward_scores, expected_backward = brute_knn(keys, queries, 6)
    np.testing.assert_array_equal(forward, expected_forward)
    np.testing.assert_array_equal(backward, expected_backward)
    np.testing.assert_allclose(forward_scores, expected_forward_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(backward_scores, expected_backward_scores, rtol=1e-5, atol=1e-6)
    one_way = knn(queries, keys, 4, chunk_size=chunk_size, backend="torch")
    np.testing.assert_array_equal(one_way[1], forward)


def test_knn_both_ways_checks_each_direction() -> None:
    queries, keys = unit_rows(3, 3, 8), unit_rows(4, 10, 8)
    with pytest.raises(ValueError, match="cannot return 4 neighbours from 3 keys"):
        knn_both_ways(queries, keys, 4, backend="torch")
    assert knn_both_ways(queries, keys, 4, 3, backend="torch")[1][1].shape == (10, 3)


def test_search_leaves_torch_threads_as_they_were() -> None:
    """The CPU search selects with one torch thread and restores the caller's setting."""
    before = torch.get_num_threads()
    knn(unit_rows(5, 50, 8), unit_rows(6, 60, 8), 3, backend="torch")
    assert torch.get_num_threads() == before


def test_even_step_cuts_equal_blocks() -> None:
    assert _even_step(10_000, 4096) == 3334  # three blocks of 3334, not 4096 + 4096 + 1808
    assert _even_step(4096, 4096) == 4096
    assert _even_step(5, 4096) == 5
    assert _even_step(1, 1) == 1


def test_block_shapes_stay_within_their_buffers() -> None:
    from stilts.eval.search import BUFFER_CELLS, KEY_BLOCK, SQUARE_BLOCK, _block_shape

    for n in (10, 10_000, 100_000, 1_000_000):
        query_step, key_step = _block_shape(n, n, None, both_ways=False)
        assert key_step <= KEY_BLOCK and query_step * key_step <= max(BUFFER_CELLS, key_step)
        assert max(_block_shape(n, n, None, both_ways=True)) <= SQUARE_BLOCK
    assert _block_shape(10_000, 10_000, None, both_ways=False) == (834, 10_000)  # wide: one merge per band
    assert _block_shape(100, 50, 7, both_ways=False) == (7, 7)
