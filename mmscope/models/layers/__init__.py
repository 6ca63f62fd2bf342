from .bimamba_mixer import BiMambaMixer
from .multi_scale import MultiScaleMaps
from .patch_embed import PatchEmbed
from .pos_embed import resample_pos_embed
from .precision import accumulation_dtype
from .reuse_block import ReuseBlock
from .rms_norm import RMSNorm
from .vim_block import VimBlock

__all__ = [
    'BiMambaMixer', 'MultiScaleMaps', 'PatchEmbed', 'RMSNorm', 'ReuseBlock',
    'VimBlock', 'accumulation_dtype', 'resample_pos_embed'
]
