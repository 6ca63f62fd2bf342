from .checkpoint_match import (check_checkpoint_matches,
                               checkpoint_mismatches, state_dict_differences)
from .cli_checks import (ConfigOptionsAction, check_checkpoint_fits,
                         check_checkpoint_input, check_config_file,
                         check_input_file, check_output_dir,
                         check_output_file)
from .data_arguments import check_data_arguments
from .data_paths import check_data_paths, missing_data_paths
from .device_config import (adapt_config_to_device, init_cpu_process_group,
                            replace_sync_bn)
from .model_settings import check_model_settings
from .runner_checkpoints import allow_runner_checkpoints
from .runner_setup import (add_runner_arguments, build_runner,
                           check_checkpoint_before_runner,
                           check_settings_exit, check_weights_before_runner,
                           close_process_group, load_runner_config)

__all__ = [
    'ConfigOptionsAction', 'adapt_config_to_device', 'add_runner_arguments',
    'allow_runner_checkpoints', 'build_runner',
    'check_checkpoint_before_runner', 'check_checkpoint_fits',
    'check_checkpoint_input', 'check_checkpoint_matches', 'check_config_file',
    'check_settings_exit', 'check_weights_before_runner',
    'check_data_arguments', 'check_data_paths', 'check_input_file',
    'check_model_settings', 'check_output_dir',
    'check_output_file', 'checkpoint_mismatches', 'close_process_group',
    'init_cpu_process_group',
    'load_runner_config', 'missing_data_paths', 'replace_sync_bn',
    'state_dict_differences'
]
