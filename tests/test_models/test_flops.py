"""The analytic MAC counts against MMEngine's FLOP counter."""
import math

import torch
from mmengine.analysis import FlopAnalyzer

from mmscope.models import MambaScope, VisionMamba
from mmscope.models.layers import VimBlock
from mmscope.models.utils.flops import (multi_scale_macs, patch_embed_macs,
                                        selective_scan_macs, vim_layer_macs)


def _module_flops(module, *inputs):
    analyzer = FlopAnalyzer(module, inputs)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer.by_module()


def test_block_projections_and_convs_match_mmengine():
    block = VimBlock(32, state_size=8).eval()
    mixer = block.mixer
    tokens = 50
    analyzer = FlopAnalyzer(block, (torch.randn(1, tokens, 32), ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)

    inner, rank, state = mixer.inner_dims, mixer.dt_rank, mixer.state_size
    scan = 2 * selective_scan_macs(tokens, inner, state)
    analytic = vim_layer_macs(tokens, 32, inner, state, rank) - scan

    # MMEngine counts the linear layers and convolutions and not the
    # element-wise scan, so the two agree on everything but the scan.
    operators = analyzer.by_operator()
    assert set(operators) == {'linear', 'conv'}
    assert operators['conv'] == 2 * tokens * inner * 4
    assert analyzer.total() == analytic


def test_conv_and_embedding_match_mmengine():
    backbone = VisionMamba(embed_dims=32, num_layers=1, state_size=4,
                           img_size=64).eval()
    images = torch.randn(1, 3, 64, 96)
    by_module = _module_flops(backbone, images)

    grid = (4, 6)
    deconvs = [
        name for name, module in backbone.named_modules()
        if isinstance(module, torch.nn.ConvTranspose2d)
    ]
    assert len(deconvs) == 3
    assert by_module['patch_embed'] == patch_embed_macs(24, 3, 32, 16)
    # Norm layers between the transposed convolutions are not counted.
    assert sum(by_module[name] for name in deconvs) == multi_scale_macs(
        grid, 32, (4, 8, 16, 32), 16)


def test_scan_term_formula():
    length, channels, state = 197, 384, 16
    expected = 4 * length * channels * state + 3 * length * channels
    assert selective_scan_macs(length, channels, state) == expected


def test_vim_count_sums_parts():
    backbone = VisionMamba(embed_dims=32, num_layers=3, state_size=4,
                           img_size=64)
    mixer = backbone.layers[0].mixer
    tokens = 4 * 6
    expected = (patch_embed_macs(tokens, 3, 32, 16) +
                3 * vim_layer_macs(tokens, 32, 64, 4, mixer.dt_rank) +
                multi_scale_macs((4, 6), 32, (4, 8, 16, 32), 16))
    assert backbone.count_macs((64, 96)) == expected


def test_scope_count_of_stopped_and_refined_images():
    scope = MambaScope(embed_dims=32, num_layers=3, state_size=4,
                       img_size=64, refine_ratio=0.5,
                       gate_head=dict(type='ScopeGateHead', num_classes=10))
    mixer = scope.layers[0].mixer
    layer = lambda n: 3 * vim_layer_macs(n, 32, 64, 4, mixer.dt_rank)
    coarse = patch_embed_macs(6, 3, 32, 16) + layer(6) + 32 * 10
    maps = multi_scale_macs((4, 6), 32, (4, 8, 16, 32), 16)
    k = math.ceil(0.5 * 6)
    mixed = 4 * k + (6 - k)
    refined = (coarse + maps + 6 * 2 * 32 * 128 +
               patch_embed_macs(24, 3, 32, 16) + layer(mixed))

    assert scope.scope_macs((2, 3), (4, 6), 0) == coarse + maps
    assert scope.scope_macs((2, 3), (4, 6), mixed) == refined
