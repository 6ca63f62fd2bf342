import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmscope.models.utils.mixed_sequence import (build_mixed_index,
                                                 gather_mixed, scatter_mixed)


def _expected_order(selected_row, coarse_w, fine_grid):
    """Walk the fine grid row by row, as the mixed sequence is defined."""
    fine_h, fine_w = fine_grid
    order = []
    for row in range(fine_h):
        for col in range(fine_w):
            cell = (row // 2) * coarse_w + col // 2
            if selected_row[cell]:
                order.append(('fine', row * fine_w + col))
            elif row % 2 == 0 and col % 2 == 0:
                order.append(('coarse', cell))
    return order


@st.composite
def selections(draw):
    coarse_h = draw(st.integers(1, 6))
    coarse_w = draw(st.integers(1, 6))
    batch = draw(st.integers(1, 3))
    num_cells = coarse_h * coarse_w
    k = draw(st.integers(0, num_cells))
    rows = []
    for _ in range(batch):
        perm = draw(st.permutations(list(range(num_cells))))
        row = torch.zeros(num_cells, dtype=torch.bool)
        row[list(perm[:k])] = True
        rows.append(row)
    return torch.stack(rows), (coarse_h, coarse_w), k


@settings(max_examples=150, deadline=None)
@given(selections())
def test_order_length_and_round_trip(case):
    selected, (coarse_h, coarse_w), k = case
    fine_grid = (2 * coarse_h, 2 * coarse_w)
    num_fine, num_coarse = 4 * coarse_h * coarse_w, coarse_h * coarse_w
    batch = selected.shape[0]

    gather_index, scatter_index = build_mixed_index(selected, fine_grid)

    assert gather_index.shape == (batch, 4 * k + (num_coarse - k))
    for b in range(batch):
        expected = [
            index if kind == 'fine' else num_fine + index
            for kind, index in _expected_order(selected[b], coarse_w,
                                               fine_grid)
        ]
        assert gather_index[b].tolist() == expected

    # A dense map that is constant on unselected coarse cells, with the
    # coarse tokens equal to that constant, survives gather then scatter.
    coarse = torch.randn(batch, num_coarse, 3)
    fine = torch.randn(batch, num_fine, 3)
    coarse_of = (torch.arange(fine_grid[0])[:, None] // 2 * coarse_w +
                 torch.arange(fine_grid[1])[None, :] // 2).flatten()
    fine_selected = selected[:, coarse_of]
    dense = torch.where(fine_selected[..., None], fine, coarse[:, coarse_of])

    mixed = gather_mixed(dense, coarse, gather_index)
    restored = scatter_mixed(mixed, scatter_index)

    assert torch.equal(restored, dense)


def test_one_by_n_grid():
    selected = torch.tensor([[True, False, True, False, False]])

    gather_index, scatter_index = build_mixed_index(selected, (2, 10))

    assert gather_index.shape == (1, 4 * 2 + 3)
    assert gather_index[0, :3].tolist() == [0, 1, 20 + 1]
    assert scatter_index.shape == (1, 20)


def test_all_selected_is_raster_order():
    selected = torch.ones(2, 6, dtype=torch.bool)

    gather_index, scatter_index = build_mixed_index(selected, (4, 6))

    assert torch.equal(gather_index[0], torch.arange(24))
    assert torch.equal(scatter_index[1], torch.arange(24))


def test_unequal_counts_rejected():
    selected = torch.tensor([[True, False], [True, True]])
    with pytest.raises(ValueError, match=r'\[1, 2\]'):
        build_mixed_index(selected, (2, 4))
