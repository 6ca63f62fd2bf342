"""tools/analysis/sweep_threshold.py against tools/test.py on real data."""
import csv
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reduced import (DET, DET_SCOPE_EVAL, RUNTIME, SEG, cfg_options)
from tests.test_tools.test_train_tool import REPO_ROOT, _run
from tests.tool_runs import tool_error

SEG_CONFIG = 'configs/ade20k/upernet_mambascope_t.py'
DET_CONFIG = 'configs/coco/mask_rcnn_mambascope_t_fpn_1x_coco.py'
SEG_TEST = dict(SEG, **RUNTIME)
# 40 iterations at a constant learning rate of 1e-3 give a model whose
# coarse and fine predictions differ and whose mIoU is above 0. The fixed
# seed makes the trained model, and so the metrics, the same in every run
# on one machine.
SEG_TRAIN = dict(SEG_TEST, **{
    'randomness.seed': 0,
    'train_cfg.max_iters': 40,
    'train_cfg.val_interval': 1000,
    'default_hooks.checkpoint.interval': 40,
    'optim_wrapper.optimizer.lr': 0.001,
    'param_scheduler': None,
})
DET_TEST = dict(DET, **DET_SCOPE_EVAL, **RUNTIME, **{
    'model.test_cfg.rcnn.score_thr': 0.0,
})
DET_TRAIN = dict(DET_TEST, **{
    'train_cfg.max_epochs': 1,
    'train_dataloader.dataset.indices': 4,
})


@pytest.fixture(scope='module')
def seg_checkpoint(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('seg_train')
    _run([sys.executable, 'tools/train.py', SEG_CONFIG, '--work-dir',
          str(work_dir), '--cfg-options', *cfg_options(SEG_TRAIN)])
    return str(work_dir / 'iter_40.pth')


def _sweep(config, checkpoint, out_dir, thresholds, options, extra=()):
    _run([
        sys.executable, 'tools/analysis/sweep_threshold.py', config,
        checkpoint, '--out-dir', str(out_dir), '--no-progress',
        '--thresholds', *map(str, thresholds), *extra, '--cfg-options',
        *cfg_options(options)
    ])
    with open(out_dir / 'sweep.csv') as file:
        rows = list(csv.DictReader(file))
    with open(out_dir / 'sweep_images.csv') as file:
        images = list(csv.DictReader(file))
    return rows, images


def _test_tool_metrics(config, checkpoint, work_dir, options, extra=()):
    _run([sys.executable, 'tools/test.py', config, checkpoint, '--work-dir',
          str(work_dir), *extra, '--cfg-options', *cfg_options(options)])
    logs = [path for path in Path(work_dir).glob('*/*.json')
            if path.parent.name == path.stem]
    assert len(logs) == 1, logs
    return json.loads(logs[0].read_text().splitlines()[-1])


def test_seg_sweep_matches_test_tool(seg_checkpoint, tmp_path):
    _, images = _sweep(SEG_CONFIG, seg_checkpoint, tmp_path / 'first',
                       [0, 1], SEG_TEST)
    confidences = sorted({float(image['confidence']) for image in images})
    assert len(images) == 3
    assert len(confidences) >= 2, 'the images need distinct confidences'
    middle = (confidences[0] + confidences[1]) / 2
    thresholds = [0, middle, 1]

    rows, _ = _sweep(SEG_CONFIG, seg_checkpoint, tmp_path / 'sweep',
                     thresholds, SEG_TEST)

    assert [float(row['threshold']) for row in rows] == thresholds
    assert [float(row['refine_share']) for row in rows] == [0, 1 / 3, 1]
    coarse = (float(rows[0]['mIoU']), float(rows[0]['aAcc']))
    fine = (float(rows[2]['mIoU']), float(rows[2]['aAcc']))
    assert coarse != fine
    for index, threshold in enumerate(thresholds):
        tested = _test_tool_metrics(
            SEG_CONFIG, seg_checkpoint, tmp_path / f'test{index}',
            dict(SEG_TEST, **{'model.backbone.threshold': threshold}))
        row = rows[index]
        assert float(row['mIoU']) == tested['mIoU'], threshold
        assert float(row['aAcc']) == tested['aAcc'], threshold
        assert float(row['refine_share']) == pytest.approx(
            tested['scope/refine_share'], abs=1e-12), threshold
        assert float(row['backbone_gflops']) == pytest.approx(
            tested['scope/backbone_gflops'], rel=1e-9), threshold


def test_seg_sweep_outputs(seg_checkpoint, tmp_path):
    thresholds = [0, 0.25, 0.5, 0.75, 1]
    # The Vim config loads the body of the MambaScope checkpoint, which
    # gives the baseline a real metric.
    baseline = ['--baseline-config', 'configs/ade20k/upernet_vim_t.py',
                '--baseline-checkpoint', seg_checkpoint,
                '--baseline-cfg-options', *cfg_options(SEG_TEST)]
    rows, images = _sweep(SEG_CONFIG, seg_checkpoint, tmp_path, thresholds,
                          SEG_TEST, extra=['--share-steps', '3', *baseline])

    shares = [float(row['refine_share']) for row in rows]
    assert {0, 1 / 3, 2 / 3, 1} <= set(shares)
    gflops = [float(row['backbone_gflops']) for row in rows]
    assert shares == sorted(shares)
    assert gflops == sorted(gflops)
    assert shares[0] == 0
    assert shares[-1] == 1
    assert [Path(image['img_path']).name for image in images] == [
        'ADE_val_00000001.jpg', 'ADE_val_00000002.jpg',
        'ADE_val_00000003.jpg'
    ]
    for image in images:
        assert float(image['coarse_gflops']) < float(image['fine_gflops'])
    png = tmp_path / 'sweep.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    table = (tmp_path / 'sweep.md').read_text()
    assert table.count('\n|') == 1 + len(rows)
    # The baseline has the width and depth of the MambaScope model, so its
    # own count equals the rows' Vim GFLOPs.
    assert f"Vim baseline at {float(rows[0]['vim_gflops']):.4g} " in table
    baseline_metrics = json.loads((tmp_path / 'baseline.json').read_text())
    assert 0 <= baseline_metrics['mIoU'] <= 100


def test_det_sweep_matches_test_tool(tmp_path):
    work_dir = tmp_path / 'det_train'
    _run([sys.executable, 'tools/train.py', DET_CONFIG, '--work-dir',
          str(work_dir), '--cfg-options', *cfg_options(DET_TRAIN)])
    checkpoint = str(work_dir / 'epoch_1.pth')

    rows, _ = _sweep(DET_CONFIG, checkpoint, tmp_path / 'sweep', [0, 1],
                     DET_TEST)

    # The second run also writes the predictions and their drawings.
    outputs = ['--out', str(tmp_path / 'det.pkl'), '--show-dir',
               str(tmp_path / 'drawn')]
    for index, threshold in enumerate([0, 1]):
        tested = _test_tool_metrics(
            DET_CONFIG, checkpoint, tmp_path / f'test{index}',
            dict(DET_TEST, **{'model.backbone.threshold': threshold}),
            outputs if index == 1 else ())
        for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
            assert float(rows[index][key]) == tested[key], (threshold, key)
        assert float(rows[index]['refine_share']) == \
            tested['scope/refine_share'], threshold

    predictions = pickle.loads((tmp_path / 'det.pkl').read_bytes())
    assert len(predictions) == 6
    assert len(list((tmp_path / 'drawn').glob('*.jpg'))) == 6


@pytest.mark.parametrize('extra, message', [
    ({'model.backbone.refine_budget': 0.5}, 'refine_budget=0.5'),
    ({'model.test_cfg.mode': 'slide', 'model.test_cfg.crop_size': (64, 64),
      'model.test_cfg.stride': (32, 32)}, "mode='whole' only"),
])
def test_sweep_rejects_unsweepable_configs(seg_checkpoint, tmp_path, extra,
                                           message):
    result = subprocess.run([
        sys.executable, 'tools/analysis/sweep_threshold.py', SEG_CONFIG,
        seg_checkpoint, '--out-dir', str(tmp_path), '--cfg-options',
        *cfg_options(dict(SEG_TEST, **extra))
    ], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]


def test_sweep_rejects_vim_backbone():
    from mmscope.analysis.threshold_sweep import check_sweep_model
    from mmscope.apis import init_scope_model, load_config

    cfg = load_config('configs/ade20k/upernet_vim_t.py', SEG)
    model = init_scope_model(cfg, None, 'cpu')
    with pytest.raises(TypeError, match='VisionMamba backbone'):
        check_sweep_model(model)


@pytest.mark.parametrize('baseline_options, message', [
    # The full-size Vim model does not fit the reduced checkpoint.
    ({key: value for key, value in SEG_TEST.items()
      if 'dataloader' in key}, 'does not contain the weights'),
    # The reduced model without the shipped data root looks for the full
    # ADE20K data set, which is not on this machine.
    ({key: value for key, value in SEG_TEST.items()
      if 'data_root' not in key}, 'Data not found'),
])
def test_sweep_checks_baseline_first(seg_checkpoint, tmp_path,
                                     baseline_options, message):
    extra = []
    if baseline_options:
        extra = ['--baseline-cfg-options', *cfg_options(baseline_options)]
    result = subprocess.run([
        sys.executable, 'tools/analysis/sweep_threshold.py', SEG_CONFIG,
        seg_checkpoint, '--out-dir', str(tmp_path), '--no-progress',
        '--thresholds', '0', '1', '--baseline-config',
        'configs/ade20k/upernet_vim_t.py', '--baseline-checkpoint',
        seg_checkpoint, '--cfg-options', *cfg_options(SEG_TEST), *extra
    ], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)

    assert result.returncode != 0
    assert '--baseline-cfg-options' in result.stderr, result.stderr[-2000:]
    assert message in result.stderr
    # The check comes before the sweep, so nothing ran.
    assert not (tmp_path / 'sweep.csv').exists()


@pytest.mark.parametrize('args, message', [
    (['--thresholds', '-0.5'], 'are negative'),
    (['--share-steps', '0'], 'at least 1'),
    (['--out-dir', 'README.md'], 'is a file'),
    (['--baseline-config', 'configs/coco/mask_rcnn_vim_t_fpn_1x_coco.py',
      '--baseline-checkpoint', None], 'must both be mmseg'),
    (['--baseline-config', 'configs/ade20k/upernet_vim_t.py',
      '--baseline-checkpoint', 'README.md'],
     '--baseline-checkpoint: README.md is not a PyTorch checkpoint file'),
    (['--baseline-config', SEG_CONFIG, '--baseline-checkpoint', None],
     '--baseline-config must have a VisionMamba backbone'),
])
def test_sweep_rejects_bad_options(seg_checkpoint, args, message):
    # None is replaced by the checkpoint file that the fixture writes.
    args = [seg_checkpoint if arg is None else arg for arg in args]
    stderr = tool_error('tools/analysis/sweep_threshold.py', SEG_CONFIG,
                        seg_checkpoint, *args)

    assert message in stderr, stderr[-2000:]


def test_report_drops_stale_baseline(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        'sweep_threshold', REPO_ROOT / 'tools/analysis/sweep_threshold.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    (tmp_path / 'baseline.json').write_text('{"mIoU": 50.0}')
    rows = [dict(threshold=0.0, refine_share=0.0, backbone_gflops=1.0,
                 vim_gflops=3.0, gflops_ratio=1 / 3, mIoU=20.0)]

    written = tool.write_report(rows, str(tmp_path), 'model', None, None)

    assert 'baseline.json' not in written
    assert not (tmp_path / 'baseline.json').exists()
