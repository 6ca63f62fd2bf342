from .share_count import ceil_share, round_share
from .vim_checkpoint import (convert_vim_state_dict, load_state_dict_checked,
                             unwrap_state_dict)

__all__ = [
    'ceil_share', 'convert_vim_state_dict', 'load_state_dict_checked',
    'round_share', 'unwrap_state_dict'
]
