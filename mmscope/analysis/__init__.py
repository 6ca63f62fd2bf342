from .backbone_override import fixed_backbone_output
from .benchmark import (BenchmarkRow, check_refine_shares, format_table,
                        noise_warnings, proposal_warnings, run_benchmark)
from .model_cost import (backbone_macs_per_image, count_parameters,
                         make_data_samples, neck_and_head_macs)

__all__ = [
    'BenchmarkRow', 'backbone_macs_per_image', 'check_refine_shares',
    'count_parameters', 'fixed_backbone_output', 'format_table',
    'make_data_samples', 'neck_and_head_macs', 'noise_warnings',
    'proposal_warnings', 'run_benchmark'
]
