from .vim_checkpoint import (convert_vim_state_dict, load_state_dict_checked,
                             unwrap_state_dict)

__all__ = [
    'convert_vim_state_dict', 'load_state_dict_checked', 'unwrap_state_dict'
]
