"""tools/train.py and tools/test.py with the MambaScope configs on CPU."""
import re
import sys

import pytest

from mmscope.engine import ScopeSelectionHook

from tests.reduced import DET, DET_SCOPE_EVAL, RUNTIME, SEG, cfg_options
from tests.test_tools.test_train_tool import _run, _scalars

SEG_CONFIG = 'configs/ade20k/upernet_mambascope_t.py'
DET_CONFIG = 'configs/coco/mask_rcnn_mambascope_t_fpn_1x_coco.py'

SEG_TRAIN = dict(SEG, **RUNTIME, **{
    'train_cfg.max_iters': 2,
    'train_cfg.val_interval': 2,
    'default_hooks.checkpoint.interval': 2,
})


def _train_seg(work_dir, extra=None):
    options = dict(SEG_TRAIN, **(extra or {}))
    return _run([sys.executable, 'tools/train.py', SEG_CONFIG, '--work-dir',
                 str(work_dir), '--cfg-options', *cfg_options(options)])


def test_seg_train_reports_scope_metrics(tmp_path):
    work_dir = tmp_path / 'seg'
    _train_seg(work_dir)

    records = _scalars(work_dir)
    val = [r for r in records if 'mIoU' in r]
    assert len(val) == 1
    assert val[0]['scope/refine_share'] >= 0.0
    assert val[0]['scope/backbone_gflops'] > 0.0
    assert val[0]['scope/vim_gflops'] > 0.0
    train = [r for r in records if 'loss' in r]
    assert 'coarse_decode.loss_ce' in train[0]
    assert 'loss_gate' in train[0]


def test_seg_test_tool_threshold_overrides(tmp_path):
    work_dir = tmp_path / 'seg'
    _train_seg(work_dir)
    checkpoint = str(work_dir / 'iter_2.pth')
    base = cfg_options(dict(SEG, **RUNTIME))

    shares = {}
    for threshold in (0, 1):
        output = _run([
            sys.executable, 'tools/test.py', SEG_CONFIG, checkpoint,
            '--work-dir', str(tmp_path / f'test{threshold}'), '--cfg-options',
            *base, f'model.backbone.threshold={threshold}'
        ])
        assert re.search(r'mIoU: \d+\.\d+', output), output[-3000:]
        match = re.search(r'scope/refine_share: (\d+\.\d+)', output)
        assert match, output[-3000:]
        shares[threshold] = float(match.group(1))

    assert shares[0] == 0.0
    assert shares[1] == 1.0


def test_switch_iter_exact_decimal():
    # 0.7 * 10 is 7.000000000000001 in binary floating point.
    assert ScopeSelectionHook(switch_at=0.7).switch_iter(10) == 7
    with pytest.raises(TypeError, match="switch_at must be a number in"):
        ScopeSelectionHook(switch_at='abc')
    assert ScopeSelectionHook(switch_at=2 / 3).switch_iter(40) == 27


def test_selection_hook_switches_and_resumes(tmp_path):
    work_dir = tmp_path / 'hook'
    schedule = {
        'train_cfg.max_iters': 4,
        'train_cfg.val_interval': 100,
        'default_hooks.checkpoint.interval': 2,
        'custom_hooks.0.switch_at': 0.5,
    }
    output = _train_seg(work_dir, schedule)
    assert 'refine ratio 1.0 from iteration 1 ' in output
    assert 'refine ratio 0.8 from iteration 3 ' in output

    # Resuming from the checkpoint at iteration 2 continues in the second
    # phase straight away.
    resumed = _run([
        sys.executable, 'tools/train.py', SEG_CONFIG, '--work-dir',
        str(work_dir), '--resume', str(work_dir / 'iter_2.pth'),
        '--cfg-options', *cfg_options(dict(SEG_TRAIN, **schedule))
    ])
    assert 'resumed' in resumed.lower()
    assert 'refine ratio 0.8 from iteration 3 ' in resumed
    assert 'refine ratio 1.0' not in resumed


def test_det_train_reports_scope_metrics(tmp_path):
    work_dir = tmp_path / 'det'
    options = dict(DET, **DET_SCOPE_EVAL, **RUNTIME, **{
        'train_cfg.max_epochs': 1,
        'train_dataloader.dataset.indices': 4,
        'model.test_cfg.rcnn.score_thr': 0.0,
    })
    _run([sys.executable, 'tools/train.py', DET_CONFIG, '--work-dir',
          str(work_dir), '--cfg-options', *cfg_options(options)])

    records = _scalars(work_dir)
    val = [r for r in records if 'coco/bbox_mAP' in r]
    assert len(val) == 1
    assert 'coco/segm_mAP' in val[0]
    assert 0.0 <= val[0]['scope/refine_share'] <= 1.0
    assert val[0]['scope/backbone_gflops'] > 0.0
