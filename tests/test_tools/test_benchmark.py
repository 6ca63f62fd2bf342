"""tools/analysis/benchmark.py and the counts behind its table."""
import dataclasses
import math
import sys

import pytest
import torch

from mmscope.analysis import (make_data_samples, neck_and_head_macs,
                              run_benchmark)
from mmscope.apis import init_scope_model, load_config
from tests.reduced import DET, SEG, WIDTH, cfg_options
from tests.test_tools.test_train_tool import _run
from tests.tool_runs import tool_error

SEG_SCOPE = 'configs/ade20k/upernet_mambascope_t.py'
SEG_VIM = 'configs/ade20k/upernet_vim_t.py'
DET_SCOPE = 'configs/coco/mask_rcnn_mambascope_t_fpn_1x_coco.py'
DET_VIM = 'configs/coco/mask_rcnn_vim_t_fpn_1x_coco.py'

# The reduced backbone of tests.reduced: width 32, 2 layers, state 4, with
# the Vim defaults expand 2, convolution width 4 and patch 16.
LAYERS, STATE, EXPAND, KERNEL, PATCH = 2, 4, 2, 4, 16
NUM_CLASSES = 150
SHAPE = (64, 96)


def _layer_macs_per_token() -> int:
    """MACs of one bidirectional Vim layer per token, written out."""
    width, inner = WIDTH, EXPAND * WIDTH
    rank = math.ceil(width / 16)
    in_proj = width * 2 * inner
    out_proj = inner * width
    per_direction = (inner * KERNEL  # depthwise causal convolution
                     + inner * (rank + 2 * STATE)  # x_proj
                     + rank * inner  # dt_proj
                     + 4 * inner * STATE  # dA, dB * u, state update, C * x
                     + 3 * inner)  # delta * u, D * u, gate
    return in_proj + out_proj + 2 * per_direction


def _expected_macs(refined: bool) -> int:
    """Backbone MACs of one 64x96 image, coarse path or fully refined."""
    width = WIDTH
    fine_tokens = (SHAPE[0] // PATCH) * (SHAPE[1] // PATCH)  # 4 x 6
    coarse_tokens = fine_tokens // 4  # 2 x 3
    embed_per_token = width * 3 * PATCH * PATCH
    layer = _layer_macs_per_token()
    deconv = 4 * width * width  # 2x2 transposed convolution per position
    # Stride 4 upsamples twice (4x6 then 8x12 positions), stride 8 once.
    multi_scale = (fine_tokens + 4 * fine_tokens) * deconv + \
        fine_tokens * deconv
    gate = width * NUM_CLASSES

    macs = (coarse_tokens * embed_per_token + LAYERS * coarse_tokens * layer +
            gate + multi_scale)
    if refined:
        reuse = coarse_tokens * (width * 4 * width + 4 * width * width)
        macs += reuse + fine_tokens * embed_per_token + \
            LAYERS * fine_tokens * layer
    return macs


def _seg_model(config, **overrides):
    cfg = load_config(config, dict(SEG, **overrides))
    return init_scope_model(cfg, None, 'cpu').eval()


def test_scope_gflops_at_share_zero_and_one():
    model = _seg_model(SEG_SCOPE, **{'model.backbone.refine_ratio': 1.0})
    inputs = torch.randn(2, 3, *SHAPE)
    samples = make_data_samples('seg', 2, SHAPE)

    rows = run_benchmark([('scope', model)], [0.0, 1.0], inputs, samples,
                         runs=1, warmup=0, device='cpu')

    assert [row.refine_share for row in rows] == [0.0, 1.0]
    assert rows[0].backbone_gflops * 1e9 == pytest.approx(
        _expected_macs(refined=False), rel=1e-12)
    assert rows[1].backbone_gflops * 1e9 == pytest.approx(
        _expected_macs(refined=True), rel=1e-12)
    assert model.backbone.refine_budget is None


def test_model_gflops_add_decode_head_count():
    from mmengine.analysis import FlopAnalyzer

    model = _seg_model(SEG_VIM)
    inputs = torch.randn(2, 3, *SHAPE)
    samples = make_data_samples('seg', 2, SHAPE)
    row = run_benchmark([('vim', model)], [0.0], inputs, samples, runs=1,
                        warmup=0, device='cpu')[0]

    with torch.no_grad():
        maps = model.backbone(inputs)
    analyzer = FlopAnalyzer(model.decode_head, (list(maps), ))
    analyzer.unsupported_ops_warnings(False)
    head = analyzer.total()
    assert head > 0
    assert neck_and_head_macs(model, inputs, maps, samples) == head
    assert row.refine_share is None
    assert row.backbone_gflops * 1e9 == model.backbone.count_macs(SHAPE)
    assert row.model_gflops == pytest.approx(
        row.backbone_gflops + head / 2 / 1e9, rel=1e-12)
    assert len(row.latencies) == 1


def _table_rows(text):
    return [line for line in text.splitlines()
            if line.startswith('| upernet') or line.startswith('| mask')]


def test_benchmark_tool_seg_table(tmp_path):
    out = tmp_path / 'table.md'
    output = _run([
        sys.executable, 'tools/analysis/benchmark.py', SEG_SCOPE,
        '--baseline', SEG_VIM, '--shape', *map(str, SHAPE), '--runs', '2',
        '--out', str(out), '--cfg-options', *cfg_options(SEG),
        '--baseline-cfg-options', *cfg_options(SEG)
    ])

    rows = _table_rows(out.read_text())
    assert rows == _table_rows(output)
    assert len(rows) == 4
    cells = [[cell.strip() for cell in row.strip('|').split('|')]
             for row in rows]
    assert [c[0] for c in cells] == ['upernet_vim_t'] + \
        ['upernet_mambascope_t'] * 3
    assert [c[1] for c in cells] == ['-', '0', '0.5', '1']
    assert cells[0][9:] == ['1.000'] * 6
    backbone_ratios = [float(c[12]) for c in cells[1:]]
    assert backbone_ratios == sorted(backbone_ratios)
    assert backbone_ratios[0] < 1 < backbone_ratios[2]
    assert 'random initialisation' in out.read_text()


def test_benchmark_tool_det_table(tmp_path):
    output = _run([
        sys.executable, 'tools/analysis/benchmark.py', DET_SCOPE,
        '--baseline', DET_VIM, '--shape', '64', '96', '--runs', '1',
        '--profile', '3', '--refine-shares', '0', '1', '--cfg-options', *cfg_options(DET),
        '--baseline-cfg-options', *cfg_options(DET)
    ])

    rows = _table_rows(output)
    assert len(rows) == 3
    model_gflops = [float(row.strip('|').split('|')[4]) for row in rows]
    backbone_gflops = [float(row.strip('|').split('|')[3]) for row in rows]
    assert all(m > b for m, b in zip(model_gflops, backbone_gflops))
    assert 'Profile of mask_rcnn_vim_t_fpn_1x_coco:' in output
    assert 'Profile of mask_rcnn_mambascope_t_fpn_1x_coco at refine share 1' \
        in output
    assert output.count('Self CPU time total') == 3


@pytest.mark.parametrize('args, message', [
    (['--shape', '64', '64', '--batch-size', '1'], 'a whole number'),
    (['--shape', '64', '64', '--refine-shares', '1.5'], 'outside [0, 1]'),
    (['--shape', '16', '16'], 'too small'),
    (['--shape', '64', '64', '--checkpoint', 'missing.pth'],
     'file not found: missing.pth'),
    (['--shape', '64', '64', '--checkpoint', 'configs'],
     'configs is a folder'),
    (['--shape', '64', '64', '--out', 'no_such_folder/table.md'],
     'does not exist'),
    (['--shape', '64', '64', '--profile', '-1'], 'must be 0 or more'),
    (['--shape', '64', '64', '--baseline', 'README.md'],
     'is not a config file'),
])
def test_benchmark_tool_rejects_bad_options(args, message):
    stderr = tool_error('tools/analysis/benchmark.py', SEG_SCOPE, *args)

    assert message in stderr, stderr[-2000:]


def test_vim_only_benchmark_ignores_shares(tmp_path):
    # The refine shares apply to MambaScope rows only, so a Vim model at
    # batch size 1 keeps the default shares 0, 0.5 and 1.
    out = tmp_path / 'table.md'
    _run([sys.executable, 'tools/analysis/benchmark.py', SEG_VIM,
          '--shape', '64', '64', '--batch-size', '1', '--runs', '1',
          '--warmup', '0', '--out', str(out), '--cfg-options',
          *cfg_options(SEG)])

    assert len(_table_rows(out.read_text())) == 1


def test_budgets_restored_after_error(monkeypatch):
    import mmscope.analysis.benchmark as benchmark
    model = _seg_model(SEG_SCOPE)
    inputs = torch.randn(2, 3, *SHAPE)
    samples = make_data_samples('seg', 2, SHAPE)
    calls = []

    def failing_count(*args):
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError('count failed')
        return 0

    monkeypatch.setattr(benchmark, 'neck_and_head_macs', failing_count)
    # The same model twice: the first entry's forced budget must not be
    # taken for the model's own.
    with pytest.raises(RuntimeError, match='count failed'):
        run_benchmark([('a', model), ('b', model)], [0.5, 1.0], inputs,
                      samples, runs=1, warmup=0, device='cpu')

    assert model.backbone.refine_budget is None


def test_detector_rows_count_proposals():
    from mmscope.analysis import proposal_warnings
    from mmscope.analysis.benchmark import count_row
    cfg = load_config(DET_VIM, DET)
    detector = init_scope_model(cfg, None, 'cpu').eval()
    inputs = torch.randn(2, 3, *SHAPE)
    samples = make_data_samples('det', 2, SHAPE)
    segmentor = _seg_model(SEG_VIM)

    row = count_row('vim', detector, inputs, samples, None)
    seg_row = count_row('seg', segmentor, inputs,
                        make_data_samples('seg', 2, SHAPE), None)

    assert row.rois_per_image > 0
    assert seg_row.rois_per_image is None
    fewer = dataclasses.replace(row, name='fewer',
                         rois_per_image=row.rois_per_image / 2)
    assert proposal_warnings([row, fewer], row) == [
        f'fewer: the RoI heads ran on {row.rois_per_image / 2:g} proposals '
        f"per image, the baseline's on {row.rois_per_image:g}, so its "
        'whole-model FLOPs and latency ratios compare different work. '
        'Compare the backbone ratios, or run both models with the weights '
        'their constructors set (no checkpoints).']
    assert proposal_warnings([row, seg_row], None) == []
