"""MambaScope: coarse-to-fine scoping on a Vision Mamba backbone.

MambaScope (Liu, Xu and Wang, "MambaScope: Coarse-to-Fine Scoping for
Efficient Vision Mamba", arXiv 2512.00647) first runs the Vim layers on the
image at half resolution. A gate head rates its confidence from the coarse
tokens, and a confident image stops there. For the others, the coarse cells
with the highest importance scores (taken from the SSM outputs of the coarse
stage) are split into 2x2 fine tokens while the rest stay coarse. The mixed
sequence then runs through the same layers again, with the coarse features
reused.
"""
import difflib
import inspect
import math
import numbers
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.init import trunc_normal_

from mmscope.models.layers import ReuseBlock, accumulation_dtype
from mmscope.models.utils.flops import multi_scale_macs, patch_embed_macs
from mmscope.models.utils.mixed_sequence import (build_mixed_index,
                                                 coarse_cell_of_fine,
                                                 gather_mixed, scatter_mixed)
from mmscope.models.utils.share_count import ceil_share, round_share
from mmscope.models.utils.whole_number import is_whole_number
from mmscope.registry import build_model_from_cfg, register_model

from .vision_mamba import VisionMamba, resolve_layer_indices


def refine_by_threshold(confidence: torch.Tensor,
                        threshold: float) -> torch.Tensor:
    """Return a bool per image, True where the gate threshold refines it.

    An image is refined unless its confidence reaches ``threshold``, so a
    NaN confidence refines it. A threshold of 1 or more refines every image.
    """
    if threshold >= 1:
        return torch.ones_like(confidence, dtype=torch.bool)
    # float64 represents a Python float threshold exactly. The comparison
    # runs on the CPU because some devices (MPS) have no float64.
    reached = confidence.detach().cpu().double() >= threshold
    return (~reached).to(confidence.device)


def _check_argument_names(kwargs: dict) -> None:
    """Raise for arguments that neither MambaScope nor VisionMamba takes.

    Python would name ``VisionMamba.__init__`` for a misspelt argument of a
    MambaScope config, so the message names MambaScope and the closest
    accepted name.

    Raises:
        TypeError: Naming each unknown argument.
    """
    own = inspect.signature(MambaScope.__init__).parameters
    inherited = inspect.signature(VisionMamba.__init__).parameters
    accepted = sorted((set(own) | set(inherited)) - {'self', 'kwargs'})
    problems = []
    for name in kwargs:
        if name in inherited:
            continue
        close = difflib.get_close_matches(name, accepted, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ''
        problems.append(f"'{name}'{hint}")
    if problems:
        raise TypeError(
            f"MambaScope got unexpected arguments: {', '.join(problems)}. "
            f"It takes {', '.join(accepted)}.")


@dataclass
class ScopeOutput:
    """Everything one MambaScope forward pass produces for a batch.

    Attributes:
        maps: Multi-scale maps of the batch, each image on its own path.
        coarse_maps: Multi-scale maps of the coarse path for every image,
            or ``None`` when not requested.
        gate_logits: Gate head logits (batch, num_classes).
        confidence: Gate confidence per image (batch,).
        refined: Bool (batch,), True for images that ran the fine stage.
        scores: Importance score of every coarse cell (batch, Hc * Wc).
        selected: Bool (batch, Hc * Wc), the coarse cells split into fine
            tokens (all False for images that stopped).
        info: One record per image, see :meth:`MambaScope.forward_scope`.
    """

    maps: Tuple[torch.Tensor, ...]
    coarse_maps: Optional[Tuple[torch.Tensor, ...]]
    gate_logits: torch.Tensor
    confidence: torch.Tensor
    refined: torch.Tensor
    scores: torch.Tensor
    selected: torch.Tensor
    info: List[dict] = field(default_factory=list)


@register_model
class MambaScope(VisionMamba):
    """Coarse-to-fine Vision Mamba backbone for dense prediction.

    It accepts every argument of :class:`VisionMamba` (same parameter names,
    so official Vim checkpoints load through ``init_cfg``) and adds the ones
    below. Inputs are padded to a multiple of twice the patch size and every
    output is cropped back.

    Args:
        gate_head: Config of the gate head, e.g.
            ``dict(type='ScopeGateHead', num_classes=150)``;
            ``in_channels`` defaults to the embedding width.
        threshold: Gate threshold eta. In evaluation an image whose
            confidence is at least eta stops after the coarse stage;
            eta >= 1 refines every image and eta = 0 refines none. In
            training every image is refined.
        refine_ratio: Share alpha of coarse cells split into fine tokens in a
            refined image, in (0, 1]; ``ceil(alpha * Hc * Wc)`` cells.
        score_layers: Layers (0-based) whose mixer outputs feed the
            importance score; ``None`` takes the second half of the layers.
        score_momentum: beta of the score update
            ``S = beta * S + (1 - beta) * max_c softplus(y_l)``.
        reuse_mlp_ratio: Hidden width of the reuse MLP as a multiple of C.
        refine_budget: Compute-budget mode for evaluation. If set, each
            batch refines the share ``refine_budget`` of its images with the
            lowest confidence, rounded half up to whole images, and
            ``threshold`` is ignored. Ties go to the earlier image.
        **kwargs: Arguments of :class:`VisionMamba`.
    """

    extra_prefixes = ('multi_scale.', 'coarse_pos_embed', 'reuse.',
                      'gate_head.')
    task_prefixes = ('gate_head.', )

    def __init__(self,
                 gate_head: dict,
                 threshold: float = 0.9,
                 refine_ratio: float = 0.8,
                 score_layers: Optional[Sequence[int]] = None,
                 score_momentum: float = 0.99,
                 reuse_mlp_ratio: int = 4,
                 refine_budget: Optional[float] = None,
                 **kwargs) -> None:
        _check_argument_names(kwargs)
        super().__init__(**kwargs)
        self.threshold = threshold
        self.refine_ratio = refine_ratio
        self.score_momentum = score_momentum
        self.refine_budget = refine_budget
        self._check_options()
        self.score_layers = self._resolve_score_layers(score_layers)

        self.coarse_pos_grid = (math.ceil(self.pos_grid[0] / 2),
                                math.ceil(self.pos_grid[1] / 2))
        self.coarse_pos_embed = nn.Parameter(
            torch.zeros(1, self.coarse_pos_grid[0] * self.coarse_pos_grid[1],
                        self.embed_dims))
        trunc_normal_(self.coarse_pos_embed, std=0.02)
        if not is_whole_number(reuse_mlp_ratio) or reuse_mlp_ratio < 1:
            raise ValueError(f'reuse_mlp_ratio must be a whole number of at '
                             f'least 1, got {reuse_mlp_ratio!r}; the default '
                             'is 4.')
        self.reuse = ReuseBlock(self.embed_dims, int(reuse_mlp_ratio))

        gate_cfg = self._gate_config(gate_head)
        try:
            self.gate_head = build_model_from_cfg(gate_cfg)
        except KeyError as error:
            # The registry raises a KeyError for an unknown type, which the
            # tools would show as a traceback.
            reason = error.args[0] if error.args else error
            raise ValueError(
                f'gate_head: {reason}. The gate head of MambaScope is '
                "type='ScopeGateHead', or a registered subclass of it.") \
                from error

        # Set by ScopeSelectionHook during training; None uses refine_ratio.
        self.train_refine_ratio: Optional[float] = None
        # Number of fine-stage passes run so far, for tests and profiling.
        self.fine_stage_runs = 0
        self.scope_info: List[dict] = []

    def _check_options(self) -> None:
        for name in ('threshold', 'refine_ratio', 'score_momentum',
                     'refine_budget'):
            value = getattr(self, name)
            if value is None and name == 'refine_budget':
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f'{name} must be a number, got {value!r}.')
            # NumPy scalars become Python floats.
            setattr(self, name, float(value))
        if not 0 <= self.threshold:
            raise ValueError(f'threshold must be >= 0, got {self.threshold}; '
                             'use 0 to refine no image, >= 1 to refine all.')
        if not 0 < self.refine_ratio <= 1:
            raise ValueError(f'refine_ratio must be in (0, 1], got '
                             f'{self.refine_ratio}; use 1 to refine every '
                             'cell of a refined image.')
        if self.refine_budget is not None and not 0 <= self.refine_budget <= 1:
            raise ValueError(f'refine_budget must be in [0, 1] or None, got '
                             f'{self.refine_budget}; it is the share of '
                             'images refined in each batch.')
        if not 0 <= self.score_momentum < 1:
            raise ValueError(f'score_momentum must be in [0, 1), got '
                             f'{self.score_momentum}; the default is 0.99.')

    def _gate_config(self, gate_head: dict) -> dict:
        """Return the gate head's config with its defaults, checked.

        The type defaults to ``ScopeGateHead`` and ``in_channels`` to
        ``embed_dims``, the width of the tokens the gate head reads.
        """
        if not isinstance(gate_head, dict):
            raise TypeError('gate_head must be a dict config, such as '
                            "dict(type='ScopeGateHead', num_classes=150), "
                            f'got {gate_head!r}.')
        gate_cfg = dict(gate_head)
        gate_cfg.setdefault('type', 'ScopeGateHead')
        gate_cfg.setdefault('in_channels', self.embed_dims)
        if gate_cfg['in_channels'] != self.embed_dims:
            raise ValueError(
                f"gate_head.in_channels is {gate_cfg['in_channels']!r}, but "
                f'the backbone gives tokens of {self.embed_dims} channels '
                '(embed_dims). Leave gate_head.in_channels out to take '
                'embed_dims.')
        return gate_cfg

    def _resolve_score_layers(
            self, score_layers: Optional[Sequence[int]]) -> Tuple[int, ...]:
        if score_layers is None:
            return tuple(range(self.num_layers // 2, self.num_layers))
        resolved = resolve_layer_indices(score_layers, self.num_layers,
                                         'score_layers')
        if not resolved:
            raise ValueError('score_layers must name at least one layer.')
        return tuple(sorted(set(resolved)))

    def pos_embed_grids(self) -> Dict[str, Tuple[int, int]]:
        """Return the stored grid of each position embedding, by key."""
        return {'pos_embed': self.pos_grid,
                'coarse_pos_embed': self.coarse_pos_grid}

    def checkpoint_grids(
            self, pos_grid: Tuple[int, int]) -> Dict[str, Tuple[int, int]]:
        """Return the grid of each position embedding of a checkpoint.

        The coarse grid of a MambaScope checkpoint is half its fine grid,
        rounded up, as in the constructor.

        Args:
            pos_grid: Grid of the checkpoint's ``pos_embed``.

        Returns:
            The grid of ``pos_embed`` and ``coarse_pos_embed``.
        """
        return {'pos_embed': pos_grid,
                'coarse_pos_embed': (math.ceil(pos_grid[0] / 2),
                                     math.ceil(pos_grid[1] / 2))}

    def coarse_position_embedding(self, grid: Tuple[int, int]) -> torch.Tensor:
        """Return ``coarse_pos_embed`` resampled to ``grid`` (bicubic)."""
        return self._resampled(self.coarse_pos_embed, self.coarse_pos_grid,
                               grid)

    @property
    def active_refine_ratio(self) -> float:
        """Refine ratio in use: the training schedule's while training."""
        if self.training and self.train_refine_ratio is not None:
            return self.train_refine_ratio
        return self.refine_ratio

    def importance_scores(self, pre_projs: Dict[int, torch.Tensor]
                          ) -> torch.Tensor:
        """Fold the score layers' mixer outputs into one score per token.

        Args:
            pre_projs: Per layer, the mixer output before ``out_proj``,
                shape (batch, tokens, inner).

        Returns:
            Scores (batch, tokens) in float32, without gradient.
        """
        beta = self.score_momentum
        scores = None
        with torch.no_grad():
            for layer in self.score_layers:
                peak = F.softplus(pre_projs[layer].float()).amax(dim=-1)
                scores = (1 - beta) * peak if scores is None else (
                    beta * scores + (1 - beta) * peak)
        return scores

    def decide_refinement(self, confidence: torch.Tensor) -> torch.Tensor:
        """Return a bool per image, True where the fine stage must run."""
        if self.training:
            return torch.ones_like(confidence, dtype=torch.bool)
        if self.refine_budget is not None:
            count = round_share(self.refine_budget, confidence.numel())
            # A NaN confidence sorts first, so its image is refined as
            # under a threshold.
            ranked = confidence.nan_to_num(nan=-math.inf)
            order = torch.sort(ranked, stable=True).indices
            refined = torch.zeros_like(confidence, dtype=torch.bool)
            return refined.index_fill(0, order[:count], True)
        return refine_by_threshold(confidence, self.threshold)

    def select_cells(self, scores: torch.Tensor, ratio: float) -> torch.Tensor:
        """Select the ``ceil(ratio * cells)`` highest-scoring coarse cells.

        Ties go to the lower index, so the selection is deterministic.

        Args:
            scores: (batch, cells).
            ratio: Share of cells to select, in (0, 1].

        Returns:
            Bool mask (batch, cells).
        """
        num_cells = scores.shape[1]
        k = min(max(ceil_share(ratio, num_cells), 1), num_cells)
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices
        selected = torch.zeros_like(scores, dtype=torch.bool)
        return selected.scatter(1, order[:, :k], True)

    def _pad_input(self, x: torch.Tensor) -> torch.Tensor:
        unit = 2 * self.patch_size
        pad_h = (-x.shape[-2]) % unit
        pad_w = (-x.shape[-1]) % unit
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return x

    def _coarse_stage(self, x: torch.Tensor):
        """Run the coarse stage on padded images.

        Returns:
            The coarse embedding tokens (patch plus position embedding), the
            outputs at ``out_indices``, the final normalised tokens, the
            importance scores and the coarse grid.
        """
        half = (x.shape[-2] // 2, x.shape[-1] // 2)
        # The antialiased resize has no half-precision CPU kernel.
        small = F.interpolate(
            x.to(accumulation_dtype(x.dtype)), size=half, mode='bilinear',
            align_corners=False, antialias=True).to(x.dtype)
        tokens, grid = self.patch_embed(small)
        embedded = tokens + self.coarse_position_embedding(grid).to(
            tokens.dtype)
        outs, final, pre_projs = self.forward_tokens(
            self.pos_drop(embedded), pre_proj_layers=self.score_layers)
        return embedded, outs, final, self.importance_scores(pre_projs), grid

    def _fine_stage(self, x: torch.Tensor, coarse_embedded: torch.Tensor,
                    coarse_final: torch.Tensor, selected: torch.Tensor,
                    fine_grid: Tuple[int, int]
                    ) -> Tuple[List[torch.Tensor], int]:
        """Run the mixed sequence of the refined images.

        Returns:
            Per output layer, the dense fine-grid tokens (batch, Hf*Wf, C),
            and the length of the mixed sequence.
        """
        self.fine_stage_runs += 1
        fine_tokens, grid = self.patch_embed(x)
        fine_tokens = fine_tokens + self.position_embedding(grid).to(
            fine_tokens.dtype)
        reuse = self.reuse(coarse_final)
        fine_tokens = fine_tokens + reuse[:, coarse_cell_of_fine(
            fine_grid, reuse.device)]

        gather_index, scatter_index = build_mixed_index(selected, fine_grid)
        mixed = gather_mixed(fine_tokens, coarse_embedded, gather_index)
        outs, _, _ = self.forward_tokens(self.pos_drop(mixed))
        dense = [scatter_mixed(out, scatter_index) for out in outs]
        return dense, mixed.shape[1]

    def _coarse_path_maps(self, coarse_outs: List[torch.Tensor],
                          coarse_grid: Tuple[int, int]) -> List[torch.Tensor]:
        """Upsample coarse outputs 2x (nearest) onto the fine grid."""
        return [
            F.interpolate(self.tokens_to_map(out, coarse_grid),
                          scale_factor=2, mode='nearest')
            for out in coarse_outs
        ]

    def forward_scope(self, x: torch.Tensor,
                      with_coarse_maps: bool = False) -> ScopeOutput:
        """Run MambaScope on a batch and keep every intermediate decision.

        Args:
            x: Images (batch, channels, H, W).
            with_coarse_maps: Also compute the coarse-path multi-scale maps
                of every image (used by the training wrappers).

        Returns:
            A :class:`ScopeOutput`. Each record of ``info`` contains
            ``stopped``, ``confidence``, ``refine_ratio``,
            ``selected_cells`` (coarse indices in raster order),
            ``importance`` (score per coarse cell), ``coarse_grid``,
            ``fine_grid``, ``input_shape``, ``cell_size`` (side of a coarse
            cell in input pixels), ``num_coarse_tokens``, ``num_fine_tokens`` (the
            mixed sequence length, 0 for a stopped image),
            ``backbone_gflops`` and ``vim_gflops`` (the Vim backbone at the
            same input size).
        """
        self.check_images(x)
        input_shape = tuple(x.shape[-2:])
        padded = self._pad_input(x)
        fine_grid = (padded.shape[-2] // self.patch_size,
                     padded.shape[-1] // self.patch_size)

        coarse_embedded, coarse_outs, coarse_final, scores, coarse_grid = \
            self._coarse_stage(padded)
        gate_logits = self.gate_head(coarse_final)
        confidence = self.gate_head.confidence(gate_logits).detach()
        refined = self.decide_refinement(confidence)

        dense = self._coarse_path_maps(coarse_outs, coarse_grid)
        coarse_dense = list(dense)
        selected = torch.zeros_like(scores, dtype=torch.bool)
        mixed_length = 0
        refined_index = refined.nonzero().flatten()
        if refined_index.numel():
            selected_refined = self.select_cells(scores[refined_index],
                                                 self.active_refine_ratio)
            selected = selected.index_copy(0, refined_index, selected_refined)
            fine_outs, mixed_length = self._fine_stage(
                padded[refined_index], coarse_embedded[refined_index],
                coarse_final[refined_index], selected_refined, fine_grid)
            dense = [
                full.index_copy(0, refined_index,
                                self.tokens_to_map(fine, fine_grid).to(
                                    full.dtype))
                for full, fine in zip(dense, fine_outs)
            ]

        maps = self.multi_scale(dense, input_shape)
        coarse_maps = None
        if with_coarse_maps:
            coarse_maps = self.multi_scale(coarse_dense, input_shape)

        output = ScopeOutput(
            maps=maps, coarse_maps=coarse_maps, gate_logits=gate_logits,
            confidence=confidence, refined=refined, scores=scores,
            selected=selected)
        output.info = self._records(output, input_shape, coarse_grid,
                                    fine_grid, mixed_length)
        self.scope_info = output.info
        return output

    def _records(self, output: ScopeOutput, input_shape: Tuple[int, int],
                 coarse_grid: Tuple[int, int], fine_grid: Tuple[int, int],
                 mixed_length: int) -> List[dict]:
        num_coarse = coarse_grid[0] * coarse_grid[1]
        vim_gflops = self.count_macs(input_shape) / 1e9
        # One copy to the host per tensor, not one per image.
        refined_images = output.refined.tolist()
        confidences = output.confidence.float().tolist()
        selected = output.selected.tolist()
        scores = output.scores.tolist()
        records = []
        for index, refined in enumerate(refined_images):
            fine_tokens = mixed_length if refined else 0
            macs = self.scope_macs(coarse_grid, fine_grid, fine_tokens)
            records.append(
                dict(
                    stopped=not refined,
                    confidence=confidences[index],
                    refine_ratio=self.active_refine_ratio if refined else 0.0,
                    selected_cells=[cell for cell, chosen in enumerate(
                        selected[index]) if chosen],
                    importance=scores[index],
                    coarse_grid=list(coarse_grid),
                    fine_grid=list(fine_grid),
                    input_shape=list(input_shape),
                    cell_size=2 * self.patch_size,
                    num_coarse_tokens=num_coarse,
                    num_fine_tokens=fine_tokens,
                    backbone_gflops=macs / 1e9,
                    vim_gflops=vim_gflops))
        return records

    def scope_macs(self, coarse_grid: Tuple[int, int],
                   fine_grid: Tuple[int, int], fine_tokens: int) -> int:
        """Count the MACs of one image on its path.

        Args:
            coarse_grid: Coarse grid (Hc, Wc).
            fine_grid: Fine grid (Hf, Wf) the maps are built on.
            fine_tokens: Length of the mixed sequence, 0 for an image that
                stopped after the coarse stage.

        Returns:
            The sum of the coarse stage (patch embedding and layers), the
            gate head and the multi-scale layers. A refined image adds the
            reuse block, the fine patch embedding of the whole grid and the
            layers on the mixed sequence. See :mod:`mmscope.models.utils.flops`.
        """
        in_channels = self.patch_embed.proj.in_channels
        num_coarse = coarse_grid[0] * coarse_grid[1]
        macs = patch_embed_macs(num_coarse, in_channels, self.embed_dims,
                                self.patch_size)
        macs += self.layer_macs(num_coarse)
        macs += self.gate_head.in_channels * self.gate_head.num_classes
        macs += multi_scale_macs(fine_grid, self.embed_dims, self.out_strides,
                                 self.patch_size)
        if fine_tokens:
            hidden = self.reuse.fc1.out_features
            macs += num_coarse * 2 * self.embed_dims * hidden
            macs += patch_embed_macs(fine_grid[0] * fine_grid[1], in_channels,
                                     self.embed_dims, self.patch_size)
            macs += self.layer_macs(fine_tokens)
        return macs

    def forward(
        self,
        x: torch.Tensor,
        scope_output: bool = False,
        with_coarse_maps: bool = False
    ) -> Union[Tuple[torch.Tensor, ...], ScopeOutput]:
        """Compute multi-scale maps, each image on its own path.

        The training wrappers call the module with ``scope_output=True``,
        not :meth:`forward_scope`, so that forward hooks run.

        Args:
            x: Images of shape (batch, in_channels, H, W).
            scope_output: Return the whole :class:`ScopeOutput` of
                :meth:`forward_scope` instead of the maps only.
            with_coarse_maps: As in :meth:`forward_scope`.

        Returns:
            One NCHW map per entry of ``out_indices`` at the matching stride,
            cropped to the input size, or the :class:`ScopeOutput`. The
            decisions taken are kept in ``self.scope_info``.
        """
        output = self.forward_scope(x, with_coarse_maps=with_coarse_maps)
        return output if scope_output else output.maps
