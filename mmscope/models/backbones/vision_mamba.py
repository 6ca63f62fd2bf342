"""Vision Mamba (Vim) backbone for dense prediction.

Vim (Zhu et al., "Vision Mamba: Efficient Visual Representation Learning with
Bidirectional State Space Model", ICML 2024) is a plain, non-hierarchical
backbone: 16x16 patches, an absolute position embedding and a stack of
bidirectional Mamba layers. For dense prediction this backbone takes the token
maps of a few layers and turns them into maps at strides 4, 8, 16 and 32.
"""
import math
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import nn
from torch.nn.init import trunc_normal_
from torch.utils.checkpoint import checkpoint

from mmscope.models.layers import (MultiScaleMaps, PatchEmbed, RMSNorm,
                                   VimBlock, resample_pos_embed)
from mmscope.models.utils.checkpoint_io import load_checkpoint_file
from mmscope.models.utils.flops import (multi_scale_macs, patch_embed_macs,
                                        vim_layer_macs)
from mmscope.models.utils.runner_config import stored_module_settings
from mmscope.models.utils.vim_checkpoint import (
    checked_grid, convert_vim_state_dict, load_state_dict_checked,
    unwrap_state_dict, warn_unless_middle_class_token)
from mmscope.models.utils.whole_number import is_whole_number
from mmscope.registry import register_model

IntOrPair = Union[int, Tuple[int, int]]

DEFAULT_ARCH = 'tiny'
DEFAULT_IMG_SIZE = 224

ARCH_SETTINGS: Dict[str, Dict[str, int]] = {
    'tiny': dict(embed_dims=192, num_layers=24, state_size=16, expand=2,
                 patch_size=16),
    'small': dict(embed_dims=384, num_layers=24, state_size=16, expand=2,
                  patch_size=16),
    'base': dict(embed_dims=768, num_layers=24, state_size=16, expand=2,
                 patch_size=16),
}


def _autocast_enabled(device_type: str) -> bool:
    """Return whether autocast is on for a device type such as ``'cpu'``."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:
        # PyTorch before 2.4 takes no device type.
        if device_type == 'cpu':
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled()


def _to_pair(value: IntOrPair, name: str) -> Tuple[int, int]:
    if is_whole_number(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            is_whole_number(entry) for entry in value):
        return int(value[0]), int(value[1])
    raise TypeError(f'{name} must be an int or a (height, width) pair of '
                    f'ints, got {value!r}.')


def pretrained_entry(init_cfg: object,
                     owner: str = 'VisionMamba') -> Optional[dict]:
    """Return the Pretrained entry of a backbone's ``init_cfg``, or None.

    ``init_cfg`` may be a dict or, as MMEngine allows, a list of dicts. A
    list with a Pretrained entry must hold only that entry.

    Args:
        init_cfg: The ``init_cfg`` setting.
        owner: Name of the backbone class, used in the message.

    Raises:
        ValueError: If a list mixes a Pretrained entry with others.
    """
    entries = init_cfg
    if not isinstance(entries, (list, tuple)):
        entries = [entries]
    pretrained = [entry for entry in entries if isinstance(entry, dict)
                  and entry.get('type') == 'Pretrained']
    if not pretrained:
        return None
    if len(entries) > 1:
        raise ValueError(
            f'init_cfg {init_cfg!r} mixes a Pretrained entry with others, '
            f'but {owner} loads its checkpoint with checks of its own. Give '
            "init_cfg=dict(type='Pretrained', checkpoint=PATH) alone.")
    return pretrained[0]


def resolve_layer_indices(indices: Sequence[int], num_layers: int,
                          name: str) -> Tuple[int, ...]:
    """Check layer indices and return them counted from the first layer.

    Args:
        indices: Whole numbers in ``[-num_layers, num_layers)``; negative
            ones count from the last layer.
        num_layers: Number of layers of the backbone.
        name: Name of the setting, used in the error message.

    Returns:
        The indices in ``[0, num_layers)``, in the given order.

    Raises:
        TypeError: If ``indices`` is not a sequence of whole numbers.
        ValueError: If an index is out of range.
    """
    if isinstance(indices, (str, bytes)) or not isinstance(indices, Sequence):
        raise TypeError(f'{name} must be a list of layer indices, got '
                        f'{indices!r}.')
    resolved = []
    for index in indices:
        if not is_whole_number(index):
            raise TypeError(f'{name} entries must be whole layer indices, '
                            f'got {index!r}.')
        if not -num_layers <= index < num_layers:
            raise ValueError(
                f'{name} entry {index} is out of range for {num_layers} '
                f'layers; use 0..{num_layers - 1} or -1 for the last layer.')
        resolved.append(int(index) % num_layers)
    return tuple(resolved)


def default_out_indices(num_layers: int) -> Tuple[int, ...]:
    """Return the last layer of each quarter of the depth (0-based).

    For 24 layers these are layers 5, 11, 17 and 23, the 6th, 12th, 18th and
    24th layer.
    """
    return tuple(max(num_layers * quarter // 4 - 1, 0) for quarter in range(1, 5))


@register_model
class VisionMamba(BaseModule):
    """Vision Mamba backbone returning multi-scale NCHW maps.

    Parameter names follow the official Vim code (``patch_embed.proj``,
    ``pos_embed``, ``layers.{i}.norm``, ``layers.{i}.mixer.*``, ``norm_f``),
    so official ImageNet checkpoints load by name through ``init_cfg``.

    Args:
        arch: Preset, one of ``'tiny'``, ``'small'``, ``'base'``.
        embed_dims: Token width; overrides the preset.
        num_layers: Number of Vim layers; overrides the preset.
        state_size: SSM state size per channel; overrides the preset.
        expand: Mixer inner width factor; overrides the preset.
        patch_size: Patch side in pixels; overrides the preset.
        img_size: Image size whose patch grid the stored position embedding
            covers (``img_size / patch_size`` per side). Other input sizes
            are served by resampling it.
        in_channels: Image channels.
        out_indices: Layers (0-based, -1 for the last) whose outputs become
            the output maps. ``None`` takes the last layer of each quarter of
            the depth: 5, 11, 17 and 23 for 24 layers.
        out_strides: Output stride of each returned map, one per entry of
            ``out_indices``.
        drop_rate: Dropout after adding the position embedding.
        drop_path_rate: Stochastic depth rate of the last layer; it grows
            linearly from 0 over the layers.
        final_norm: Apply the final RMSNorm ``norm_f`` to the last layer's
            output when it is one of the outputs.
        norm_cfg: Norm layer config of the multi-scale upsampling layers.
        with_cp: Use activation checkpointing in every layer while training.
        pretrained: Deprecated path to a checkpoint; use ``init_cfg``.
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH)`` loads an
            official Vim checkpoint or an mmscope one (optional ``prefix``).
            ``pos_embed_grid=(rows, columns)`` states the grid of the
            checkpoint's position embedding. Without it, the grid is read
            from the file: from the ``meta`` that
            ``tools/convert_vim_checkpoint.py`` writes, or from the config
            that MMEngine's runner stores. Official checkpoints have a square
            grid. Any other grid is guessed, with a warning.
    """

    # Parameters added on top of the Vim body, allowed to be missing from a
    # Vim checkpoint.
    extra_prefixes: Tuple[str, ...] = ('multi_scale.', )
    # Parameters whose shapes depend on the task; a checkpoint of another
    # task leaves them at their initial values.
    task_prefixes: Tuple[str, ...] = ()

    # Backbone types whose img_size and patch_size set the grid of
    # pos_embed as in this class.
    grid_types: Tuple[str, ...] = ('VisionMamba', 'MambaScope')

    def __init__(self,
                 arch: str = DEFAULT_ARCH,
                 embed_dims: Optional[int] = None,
                 num_layers: Optional[int] = None,
                 state_size: Optional[int] = None,
                 expand: Optional[int] = None,
                 patch_size: Optional[int] = None,
                 img_size: IntOrPair = DEFAULT_IMG_SIZE,
                 in_channels: int = 3,
                 out_indices: Optional[Union[int, Sequence[int]]] = None,
                 out_strides: Sequence[int] = (4, 8, 16, 32),
                 drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0,
                 final_norm: bool = True,
                 norm_cfg: Optional[dict] = None,
                 with_cp: bool = False,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError('Set either init_cfg or the deprecated '
                                 'pretrained, not both.')
            # A UserWarning, because Python hides a DeprecationWarning
            # raised from library code.
            warnings.warn('pretrained is deprecated; use '
                          'init_cfg=dict(type="Pretrained", checkpoint=...)')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)

        settings = self._resolve_arch(arch, embed_dims, num_layers, state_size,
                                      expand, patch_size)
        self.arch = arch
        self.embed_dims = settings['embed_dims']
        self.num_layers = settings['num_layers']
        self.state_size = settings['state_size']
        self.expand = settings['expand']
        self.patch_size = settings['patch_size']
        self.with_cp = with_cp
        self.final_norm = final_norm

        img_h, img_w = _to_pair(img_size, 'img_size')
        if min(img_h, img_w) < self.patch_size:
            raise ValueError(
                f'img_size {img_size!r} is smaller than one patch of '
                f'{self.patch_size} pixels; it sets the stored position grid '
                '(img_size / patch_size per side), for example 224 or 512.')
        self.pos_grid = (max(img_h // self.patch_size, 1),
                         max(img_w // self.patch_size, 1))
        self.out_indices = self._resolve_out_indices(out_indices)
        self.out_strides = tuple(out_strides)
        if len(self.out_strides) != len(self.out_indices):
            raise ValueError(
                f'out_strides {self.out_strides} must have one stride per '
                f'entry of out_indices {self.out_indices}.')

        self.patch_embed = PatchEmbed(in_channels, self.embed_dims,
                                      self.patch_size)
        self.pos_embed = nn.Parameter(
            torch.zeros(1, self.pos_grid[0] * self.pos_grid[1],
                        self.embed_dims))
        trunc_normal_(self.pos_embed, std=0.02)
        self.pos_drop = nn.Dropout(p=drop_rate)

        rates = torch.linspace(0, drop_path_rate, self.num_layers).tolist()
        self.layers = nn.ModuleList([
            VimBlock(
                self.embed_dims, state_size=self.state_size,
                expand=self.expand, drop_path=rate,
                num_layers=self.num_layers) for rate in rates
        ])
        self.norm_f = RMSNorm(self.embed_dims)
        self.multi_scale = MultiScaleMaps(
            self.embed_dims, self.patch_size, self.out_strides,
            dict(norm_cfg or dict(type='BN', requires_grad=True)))
        self._pos_embed_cache: Dict[tuple, Tuple[torch.Tensor,
                                                 torch.Tensor]] = {}

    @staticmethod
    def _resolve_arch(arch: str, *overrides: Optional[int]) -> Dict[str, int]:
        if arch not in ARCH_SETTINGS:
            raise ValueError(f'Invalid arch {arch!r}; choose one of '
                             f'{sorted(ARCH_SETTINGS)}.')
        settings = dict(ARCH_SETTINGS[arch])
        for name, value in zip(('embed_dims', 'num_layers', 'state_size',
                                'expand', 'patch_size'), overrides):
            if value is None:
                continue
            if not is_whole_number(value) or value <= 0:
                raise ValueError(f'{name} must be a positive int, got '
                                 f'{value!r}.')
            settings[name] = int(value)
        return settings

    def _resolve_out_indices(
            self, out_indices: Optional[Union[int, Sequence[int]]]
    ) -> Tuple[int, ...]:
        if out_indices is None:
            return default_out_indices(self.num_layers)
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        return resolve_layer_indices(out_indices, self.num_layers,
                                     'out_indices')

    def position_embedding(self, grid: Tuple[int, int]) -> torch.Tensor:
        """Return ``pos_embed`` resampled to ``grid`` (bicubic).

        Resampled copies are cached per grid while no gradient flows into
        ``pos_embed``, as in evaluation. Each entry keeps a copy of the
        embedding it was resampled from and is used only while
        ``pos_embed`` still equals that copy. So weight updates that bypass
        the parameter's version counter, such as fused optimizers or an EMA
        hook swapping ``.data``, invalidate it too.
        """
        return self._resampled(self.pos_embed, self.pos_grid, grid)

    def _resampled(self, pos_embed: torch.Tensor, src: Tuple[int, int],
                   dst: Tuple[int, int]) -> torch.Tensor:
        if torch.is_grad_enabled() and pos_embed.requires_grad:
            return resample_pos_embed(pos_embed, src, dst)

        key = (id(pos_embed), pos_embed.device, pos_embed.dtype, src, dst)
        entry = self._pos_embed_cache.get(key)
        if entry is not None and torch.equal(entry[0], pos_embed):
            return entry[1]

        if len(self._pos_embed_cache) > 32:
            self._pos_embed_cache.clear()
        with torch.no_grad():
            resampled = resample_pos_embed(pos_embed, src, dst)
            self._pos_embed_cache[key] = (pos_embed.detach().clone(),
                                          resampled)
        return resampled

    def embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Embed images into position-encoded tokens.

        Args:
            x: Images of shape (batch, channels, H, W), any H and W.

        Returns:
            Tokens (batch, Hp * Wp, C) and the grid ``(Hp, Wp)``.
        """
        tokens, grid = self.patch_embed(x)
        tokens = tokens + self.position_embedding(grid).to(tokens.dtype)
        return self.pos_drop(tokens), grid

    def _run_layer(self, layer: VimBlock, x: torch.Tensor,
                   return_pre_proj: bool):
        if self.with_cp and self.training and x.requires_grad:
            return checkpoint(layer, x, return_pre_proj, use_reentrant=False)
        return layer(x, return_pre_proj)

    def forward_tokens(
        self,
        tokens: torch.Tensor,
        out_indices: Optional[Sequence[int]] = None,
        pre_proj_layers: Sequence[int] = ()
    ) -> Tuple[List[torch.Tensor], torch.Tensor, Dict[int, torch.Tensor]]:
        """Run all layers on a token sequence.

        Args:
            tokens: Position-encoded tokens of shape (batch, length, C) in any
                order; the layers only see the sequence.
            out_indices: Layers whose outputs to collect; defaults to
                ``self.out_indices``.
            pre_proj_layers: Layers whose mixer output before ``out_proj`` to
                collect, shape (batch, length, inner).

        Returns:
            The outputs at ``out_indices`` (each (batch, length, C), the last
            layer normalised with ``norm_f`` when ``final_norm``), the final
            normalised tokens, and the pre-projection outputs by layer.
        """
        out_indices = self.out_indices if out_indices is None else out_indices
        collect = set(out_indices)
        collect_pre_proj = set(pre_proj_layers)
        last = self.num_layers - 1

        collected: Dict[int, torch.Tensor] = {}
        pre_projs: Dict[int, torch.Tensor] = {}
        x = tokens
        for index, layer in enumerate(self.layers):
            x, pre_proj = self._run_layer(layer, x, index in collect_pre_proj)
            if pre_proj is not None:
                pre_projs[index] = pre_proj
            if index in collect:
                collected[index] = x

        final = self.norm_f(x.to(self.norm_f.weight.dtype)).to(tokens.dtype)
        if self.final_norm and last in collect:
            collected[last] = final
        outs = [collected[index].to(tokens.dtype) for index in out_indices]
        return outs, final, pre_projs

    @staticmethod
    def tokens_to_map(tokens: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        """Reshape raster-order tokens (batch, H*W, C) to (batch, C, H, W)."""
        batch, _, channels = tokens.shape
        return tokens.transpose(1, 2).reshape(batch, channels, *grid)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Compute multi-scale maps.

        Args:
            x: Images of shape (batch, in_channels, H, W).

        Returns:
            One NCHW map per entry of ``out_indices``, at the matching entry
            of ``out_strides``, cropped to ``ceil(H / stride)`` by
            ``ceil(W / stride)``.
        """
        self.check_images(x)
        tokens, grid = self.embed(x)
        outs, _, _ = self.forward_tokens(tokens)
        maps = [self.tokens_to_map(out, grid) for out in outs]
        return self.multi_scale(maps, tuple(x.shape[-2:]))

    def check_images(self, x: torch.Tensor) -> None:
        """Raise unless ``x`` is a batch of images this backbone can embed.

        Args:
            x: The input of ``forward``.

        Raises:
            ValueError: If ``x`` is not 4-D, has another channel count than
                ``in_channels``, an empty height or width, or a dtype that
                the patch embedding cannot take: integers, or another
                floating-point type than the weights' outside autocast.
        """
        name = type(self).__name__
        channels = self.patch_embed.proj.in_channels
        if x.dim() != 4:
            raise ValueError(f'{name} expects images of shape (batch, '
                             f'channels, height, width), got {tuple(x.shape)}.')
        if x.shape[1] != channels:
            raise ValueError(
                f'{name} expects {channels} channels (in_channels) in '
                f'dimension 1 of (batch, channels, height, width), got '
                f'shape {tuple(x.shape)}. Put channels first (NCHW), or set '
                'in_channels.')
        if x.shape[2] < 1 or x.shape[3] < 1:
            raise ValueError(f'{name} expects images of at least 1x1 pixels, '
                             f'got shape {tuple(x.shape)}.')
        weight_dtype = self.patch_embed.proj.weight.dtype
        if not x.is_floating_point():
            raise ValueError(
                f'{name} expects floating-point images, got {x.dtype}. '
                f'Convert them with x.to({weight_dtype}) after normalising, '
                "as the model's data preprocessor does.")
        if x.dtype != weight_dtype and not _autocast_enabled(x.device.type):
            raise ValueError(
                f'{name} has {weight_dtype} weights but got {x.dtype} '
                f'images. Convert them with x.to({weight_dtype}), or run '
                'under torch.autocast.')

    def layer_macs(self, num_tokens: int) -> int:
        """Count the MACs of all Vim layers on a sequence of ``num_tokens``."""
        mixer = self.layers[0].mixer
        return self.num_layers * vim_layer_macs(
            num_tokens, self.embed_dims, mixer.inner_dims, mixer.state_size,
            mixer.dt_rank, mixer.conv1d.kernel_size[0])

    def count_macs(self, input_shape: Tuple[int, int]) -> int:
        """Count the backbone MACs for one image of ``input_shape`` (H, W).

        See :mod:`mmscope.models.utils.flops` for what is counted.
        """
        grid = (math.ceil(input_shape[0] / self.patch_size),
                math.ceil(input_shape[1] / self.patch_size))
        num_tokens = grid[0] * grid[1]
        embed = patch_embed_macs(num_tokens, self.patch_embed.proj.in_channels,
                                 self.embed_dims, self.patch_size)
        maps = multi_scale_macs(grid, self.embed_dims, self.out_strides,
                                self.patch_size)
        return embed + self.layer_macs(num_tokens) + maps

    def pos_embed_grids(self) -> Dict[str, Tuple[int, int]]:
        """Return the stored grid of each position embedding, by key."""
        return {'pos_embed': self.pos_grid}

    def checkpoint_grids(
            self, pos_grid: Tuple[int, int]) -> Dict[str, Tuple[int, int]]:
        """Return the grid of each position embedding of a checkpoint.

        Args:
            pos_grid: Grid of the checkpoint's ``pos_embed``.

        Returns:
            The grid of each position embedding, by key, of a checkpoint of
            this backbone type whose ``pos_embed`` has ``pos_grid``.
        """
        return {'pos_embed': pos_grid}

    def convert_checkpoint(
        self,
        checkpoint: dict,
        prefix: Optional[str] = None,
        source_grid: Optional[Sequence[int]] = None,
    ) -> Dict[str, torch.Tensor]:
        """Convert a loaded checkpoint to this backbone's state-dict layout.

        Args:
            checkpoint: Content of a Vim or mmscope checkpoint file.
            prefix: Key prefix to select and strip, such as ``'backbone.'``.
            source_grid: Grid (rows, columns) of the checkpoint's position
                embedding. None reads it from the ``meta`` of a file that
                ``tools/convert_vim_checkpoint.py`` wrote, or infers it.

        Returns:
            A state dict with this backbone's key names and grid sizes.
        """
        state_dict = unwrap_state_dict(checkpoint, prefix)
        if 'cls_token' in state_dict:
            warn_unless_middle_class_token(checkpoint)
        meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
        if source_grid is None and isinstance(meta, dict):
            source_grid = meta.get('pos_embed_grid')
        if source_grid is None and isinstance(meta, dict):
            source_grid = self._stored_config_grid(meta, prefix, state_dict)

        source_grids = None
        if source_grid is not None:
            source_grids = self.checkpoint_grids(checked_grid(source_grid))

        converted, dropped = convert_vim_state_dict(
            state_dict, self.pos_embed_grids(), source_grids)
        if dropped:
            print_log(f'Dropped classification-only weights: {dropped}',
                      logger='current')
        return converted

    def _stored_config_grid(
            self, meta: dict, prefix: Optional[str],
            state_dict: Dict[str, torch.Tensor]) -> Optional[Tuple[int, int]]:
        """Return the ``pos_embed`` grid that a runner checkpoint's config sets.

        Args:
            meta: The checkpoint's ``meta``. MMEngine's runner stores the
                config text under ``cfg``.
            prefix: Key prefix of the backbone, such as ``'backbone.'``; it
                names the backbone's place in the stored ``model``.
            state_dict: The checkpoint's backbone weights.

        Returns:
            The grid (rows, columns), or None when the config text is absent,
            describes no Vim backbone at ``prefix``, or gives a grid that
            does not fit the checkpoint's ``pos_embed``.
        """
        cfg_text = meta.get('cfg')
        pos_embed = state_dict.get('pos_embed')
        if not isinstance(cfg_text, str) or not prefix or not isinstance(
                pos_embed, torch.Tensor) or pos_embed.dim() != 3:
            return None
        path = [part for part in prefix.split('.') if part]
        settings = stored_module_settings(cfg_text, path)
        if settings is None or str(settings.get('type')).split(
                '.')[-1] not in self.grid_types:
            return None

        arch = settings.get('arch', DEFAULT_ARCH)
        patch_size = settings.get('patch_size')
        if patch_size is None and isinstance(arch, str) and \
                arch in ARCH_SETTINGS:
            patch_size = ARCH_SETTINGS[arch]['patch_size']
        try:
            img_h, img_w = _to_pair(
                settings.get('img_size', DEFAULT_IMG_SIZE), 'img_size')
        except (TypeError, ValueError):
            return None
        if not isinstance(patch_size, int) or patch_size <= 0:
            return None

        grid = (max(img_h // patch_size, 1), max(img_w // patch_size, 1))
        if grid[0] * grid[1] != pos_embed.shape[1]:
            return None
        print_log(f"Read the grid {grid[0]}x{grid[1]} of the checkpoint's "
                  'pos_embed from the config stored in it (img_size '
                  f'{img_h}x{img_w}, patch_size {patch_size}).',
                  logger='current')
        return grid

    def pretrained_init_cfg(self) -> Optional[dict]:
        """Return the Pretrained entry of ``init_cfg``, or None.

        Raises:
            ValueError: As :func:`pretrained_entry` describes.
        """
        return pretrained_entry(self.init_cfg, type(self).__name__)

    def init_weights(self) -> None:
        """Load ``init_cfg``'s Pretrained checkpoint, or initialise.

        The checkpoint must contain every weight of the Vim body. The layers
        of ``extra_prefixes`` may be missing, and those of ``task_prefixes``
        may have other shapes (see :func:`load_state_dict_checked`). A
        child module that misses weights in the checkpoint runs its own
        ``init_weights``, so its ``init_cfg`` applies, and then gets back
        the weights that the checkpoint did set.
        """
        pretrained = self.pretrained_init_cfg()
        if pretrained is None:
            super().init_weights()
            return

        path = pretrained['checkpoint']
        checkpoint_content = load_checkpoint_file(path)
        state_dict = self.convert_checkpoint(
            checkpoint_content, pretrained.get('prefix'),
            pretrained.get('pos_embed_grid'))
        not_loaded = load_state_dict_checked(
            self, state_dict, self.extra_prefixes, source=str(path),
            resizable=self.task_prefixes)
        initialised = self._init_children_not_loaded(not_loaded)
        print_log(f'Loaded {type(self).__name__} weights from {path}. Not '
                  f'in the checkpoint: {not_loaded}; modules initialised by '
                  f'their init_weights: {initialised}', logger='current')
        self._is_init = True

    def _init_children_not_loaded(self, not_loaded: List[str]) -> List[str]:
        """Run ``init_weights`` of the children the checkpoint did not set.

        A child that the checkpoint set in part, such as a gate head of
        another class count whose norm still loads, is initialised as a
        whole and then gets back the loaded values.

        Args:
            not_loaded: State-dict keys that kept their initial values.

        Returns:
            The names of the children whose ``init_weights`` ran.
        """
        not_loaded = set(not_loaded)
        initialised = []
        for name, child in self.named_children():
            if not hasattr(child, 'init_weights'):
                continue
            state = child.state_dict()
            if not not_loaded.intersection(f'{name}.{key}' for key in state):
                continue
            loaded = {key: value.clone() for key, value in state.items()
                      if f'{name}.{key}' not in not_loaded}
            child.init_weights()
            child.load_state_dict(loaded, strict=False)
            initialised.append(name)
        return initialised
