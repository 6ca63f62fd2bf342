"""Index maps between a dense fine grid and MambaScope's mixed sequence.

Notation: the fine grid is ``Hf x Wf`` (both even), the coarse grid is
``Hc x Wc = Hf / 2 x Wf / 2``, and coarse cell ``(i, j)`` covers the fine
cells ``(2i..2i+1, 2j..2j+1)``. The mixed sequence walks the fine grid in
raster order. It emits the fine token of every fine cell inside a selected
coarse cell, and the coarse token of every unselected coarse cell at that
cell's top-left fine cell. With ``k`` selected cells it contains
``4k + (Hc * Wc - k)`` tokens.
"""
from typing import Optional, Tuple

import torch


def coarse_cell_of_fine(fine_grid: Tuple[int, int],
                        device: Optional[torch.device] = None) -> torch.Tensor:
    """Return, for each fine cell in raster order, its coarse cell index.

    Args:
        fine_grid: ``(Hf, Wf)``, both even.
        device: Device of the result.

    Returns:
        Long tensor of shape (Hf * Wf,).
    """
    fine_h, fine_w = fine_grid
    if fine_h % 2 or fine_w % 2:
        raise ValueError(f'The fine grid must have even sides, got '
                         f'{fine_h}x{fine_w}.')
    rows = torch.arange(fine_h, device=device) // 2
    cols = torch.arange(fine_w, device=device) // 2
    return (rows[:, None] * (fine_w // 2) + cols[None, :]).flatten()


def build_mixed_index(selected: torch.Tensor, fine_grid: Tuple[int, int]
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Build the gather and scatter indices of the mixed sequences.

    Args:
        selected: Bool tensor (batch, Hc * Wc); every row must select the
            same number of coarse cells.
        fine_grid: ``(Hf, Wf)`` with ``Hf = 2 * Hc`` and ``Wf = 2 * Wc``.

    Returns:
        ``gather_index`` of shape (batch, length): for each position of the
        mixed sequence, an index into the concatenation of the fine tokens
        (``0 .. Hf*Wf - 1``) and the coarse tokens (``Hf*Wf + c``); and
        ``scatter_index`` of shape (batch, Hf * Wf): for each fine cell, the
        position of the mixed token that covers it.

    Raises:
        ValueError: If the rows select different numbers of cells or the
            grids do not match.
    """
    fine_h, fine_w = fine_grid
    num_fine = fine_h * fine_w
    batch, num_coarse = selected.shape
    if num_coarse * 4 != num_fine:
        raise ValueError(f'selected covers {num_coarse} coarse cells, but a '
                         f'{fine_h}x{fine_w} fine grid has {num_fine // 4}.')
    counts = selected.sum(dim=1)
    if batch and not torch.all(counts == counts[0]):
        raise ValueError('Every image must select the same number of coarse '
                         f'cells to share one batch, got {counts.tolist()}.')

    device = selected.device
    coarse_of = coarse_cell_of_fine(fine_grid, device)
    positions = torch.arange(num_fine, device=device)
    rows, cols = positions // fine_w, positions % fine_w
    is_top_left = (rows % 2 == 0) & (cols % 2 == 0)

    fine_selected = selected[:, coarse_of]
    keep = fine_selected | is_top_left[None, :]
    source = torch.where(fine_selected, positions[None, :],
                         num_fine + coarse_of[None, :])
    length = int(keep[0].sum()) if batch else 0
    gather_index = source[keep].reshape(batch, length)

    # Position in the mixed sequence of every kept fine cell, then the
    # position of the top-left cell for cells of unselected coarse cells.
    rank = torch.cumsum(keep.long(), dim=1) - 1
    top_left = (rows // 2 * 2) * fine_w + (cols // 2 * 2)
    scatter_index = torch.where(fine_selected, rank, rank[:, top_left])
    return gather_index, scatter_index


def gather_mixed(fine_tokens: torch.Tensor, coarse_tokens: torch.Tensor,
                 gather_index: torch.Tensor) -> torch.Tensor:
    """Assemble mixed sequences from fine and coarse tokens.

    Args:
        fine_tokens: (batch, Hf * Wf, C) in raster order.
        coarse_tokens: (batch, Hc * Wc, C) in raster order.
        gather_index: From :func:`build_mixed_index`.

    Returns:
        Mixed sequences of shape (batch, length, C).
    """
    pool = torch.cat([fine_tokens, coarse_tokens], dim=1)
    index = gather_index[..., None].expand(-1, -1, pool.shape[-1])
    return torch.gather(pool, 1, index)


def scatter_mixed(mixed_tokens: torch.Tensor,
                  scatter_index: torch.Tensor) -> torch.Tensor:
    """Put mixed tokens back on the dense fine grid.

    Fine tokens land on their own cells and every coarse token is copied to
    the four fine cells it covers.

    Args:
        mixed_tokens: (batch, length, C).
        scatter_index: From :func:`build_mixed_index`.

    Returns:
        Dense tokens of shape (batch, Hf * Wf, C) in raster order.
    """
    index = scatter_index[..., None].expand(-1, -1, mixed_tokens.shape[-1])
    return torch.gather(mixed_tokens, 1, index)
