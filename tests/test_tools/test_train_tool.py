"""tools/train.py and tools/test.py on the shipped real datasets, on CPU."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmscope.models import VisionMamba
from mmscope.models.layers import resample_pos_embed
from tests.reduced import DET, DET_EVAL, RUNTIME, SEG, cfg_options
from tests.tool_runs import tool_error

REPO_ROOT = Path(__file__).resolve().parents[2]
SEG_CONFIG = 'configs/ade20k/upernet_vim_t.py'
DET_CONFIG = 'configs/coco/mask_rcnn_vim_t_fpn_1x_coco.py'

SEG_TRAIN = dict(SEG, **RUNTIME, **{
    'train_cfg.max_iters': 2,
    'train_cfg.val_interval': 2,
    'default_hooks.checkpoint.interval': 2,
})
DET_TRAIN = dict(DET, **DET_EVAL, **RUNTIME, **{
    'train_cfg.max_epochs': 1,
    # Two batches of two images make one epoch of two iterations.
    'train_dataloader.dataset.indices': 4,
    # An untrained detector scores every box below the default 0.05;
    # keeping all boxes makes the metric run on real predictions.
    'model.test_cfg.rcnn.score_thr': 0.0,
})


def _run(args, timeout=900, env_extra=None):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env.update(env_extra or {})
    result = subprocess.run(
        args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
        env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


def _scalars(work_dir):
    scalar_files = list(Path(work_dir).glob('*/vis_data/scalars.json'))
    assert scalar_files, f'no scalars.json under {work_dir}'
    return [json.loads(line) for line in
            scalar_files[0].read_text().splitlines()]


def test_train_seg_two_iterations_and_validation(tmp_path):
    work_dir = tmp_path / 'seg'
    _run([sys.executable, 'tools/train.py', SEG_CONFIG, '--work-dir',
          str(work_dir), '--cfg-options', *cfg_options(SEG_TRAIN)])

    records = _scalars(work_dir)
    train = [r for r in records if 'loss' in r]
    val = [r for r in records if 'mIoU' in r]
    assert [r['iter'] for r in train] == [1, 2]
    assert len(val) == 1
    assert 0.0 <= val[0]['mIoU'] <= 100.0
    assert (work_dir / 'iter_2.pth').is_file()

    # --resume without a path finds iter_2.pth. It has nothing left to
    # train at max_iters 2, and it does not fit a deeper model.
    resume = [sys.executable, 'tools/train.py', SEG_CONFIG, '--work-dir',
              str(work_dir), '--resume', '--cfg-options']
    output = _run([*resume, *cfg_options(SEG_TRAIN)])
    assert 'iter_2.pth ends at iter 2, and train_cfg.max_iters is 2' in output
    deeper = dict(SEG_TRAIN, **{'model.backbone.num_layers': 3})
    dumped = work_dir / 'upernet_vim_t.py'
    config_before = dumped.read_text()
    logs_before = sorted(path.name for path in work_dir.iterdir())
    assert 'missing keys: backbone.layers.2.' in tool_error(
        *resume[1:], *cfg_options(deeper))
    # The rejected run left the work folder as it was.
    assert dumped.read_text() == config_before
    assert sorted(path.name for path in work_dir.iterdir()) == logs_before


def test_resume_without_checkpoint_warns(tmp_path):
    work_dir = tmp_path / 'fresh'
    output = _run([sys.executable, 'tools/train.py', SEG_CONFIG, '--work-dir',
                   str(work_dir), '--resume', '--cfg-options',
                   *cfg_options(SEG_TRAIN)])

    assert f'--resume: {work_dir} contains no checkpoint to resume from' \
        in output
    assert 'latest checkpoint None' not in output
    assert 'Did not find last_checkpoint' not in output
    assert (work_dir / 'iter_2.pth').is_file()


def test_resume_without_checkpoint_keeps_load_from(tmp_path):
    # With nothing to resume, the run starts from the config's load_from,
    # which is checked and rejected here because it contains no weights.
    empty = tmp_path / 'empty.pth'
    torch.save({'state_dict': {}}, empty)

    stderr = tool_error('tools/train.py', SEG_CONFIG, '--work-dir',
                        str(tmp_path / 'fresh'), '--resume', '--cfg-options',
                        *cfg_options(SEG_TRAIN), f'load_from={empty}')

    assert f'load_from: {empty}' in stderr


def test_test_tool_seg(tmp_path):
    work_dir = tmp_path / 'seg'
    _run([sys.executable, 'tools/train.py', SEG_CONFIG, '--work-dir',
          str(work_dir), '--cfg-options', *cfg_options(SEG_TRAIN)])

    output = _run([sys.executable, 'tools/test.py', SEG_CONFIG,
                   str(work_dir / 'iter_2.pth'), '--work-dir',
                   str(tmp_path / 'test'), '--out', str(tmp_path / 'maps'),
                   '--show-dir', str(tmp_path / 'drawn'), '--cfg-options',
                   *cfg_options(dict(SEG, **RUNTIME, **{
                       'default_hooks.visualization.interval': 1}))])

    assert re.search(r'mIoU: \d+\.\d+', output), output[-3000:]
    # One label map and one drawing per shipped validation image.
    maps = sorted(path.name for path in (tmp_path / 'maps').glob('*.png'))
    assert maps == [f'ADE_val_0000000{index}.png' for index in (1, 2, 3)]
    assert len(list((tmp_path / 'drawn').rglob('*.png'))) == 3


def test_train_det_two_iterations_and_validation(tmp_path, monkeypatch):
    work_dir = tmp_path / 'det'
    _run([sys.executable, 'tools/train.py', DET_CONFIG, '--work-dir',
          str(work_dir), '--cfg-options', *cfg_options(DET_TRAIN)])

    records = _scalars(work_dir)
    train = [r for r in records if 'loss' in r]
    val = [r for r in records if 'coco/bbox_mAP' in r]
    assert len(train) == 2
    assert len(val) == 1
    assert 'coco/segm_mAP' in val[0]
    assert (work_dir / 'epoch_1.pth').is_file()

    # The runner stores the config in the checkpoint, so its non-square
    # 4x6 position grid (img_size 64x96) is known when it initialises a
    # backbone of another grid. Runner checkpoints need the full unpickler.
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    checkpoint = torch.load(work_dir / 'epoch_1.pth', weights_only=False)
    backbone = VisionMamba(
        embed_dims=DET['model.backbone.embed_dims'],
        num_layers=DET['model.backbone.num_layers'],
        state_size=DET['model.backbone.state_size'], img_size=80,
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint=str(work_dir / 'epoch_1.pth')))
    backbone.init_weights()
    stored = checkpoint['state_dict']['backbone.pos_embed']
    expected = resample_pos_embed(stored, (4, 6), (5, 5))
    assert torch.equal(backbone.pos_embed.detach(), expected)


def test_test_tool_missing_checkpoint(tmp_path):
    stderr = tool_error('tools/test.py', SEG_CONFIG,
                        str(tmp_path / 'absent.pth'))

    assert 'absent.pth' in stderr


def test_train_tool_missing_resume_file(tmp_path):
    stderr = tool_error('tools/train.py', SEG_CONFIG, '--resume',
                        str(tmp_path / 'absent.pth'))

    assert '--resume: file not found' in stderr


def test_tools_check_config_and_work_dir(tmp_path):
    a_file = tmp_path / 'file'
    a_file.write_text('')

    for tool in ('tools/train.py', 'tools/test.py'):
        checkpoint = [] if tool == 'tools/train.py' else [str(a_file)]
        assert 'config: file not found' in tool_error(
            tool, str(tmp_path / 'absent.py'), *checkpoint)
        assert 'config configs/ade20k is a folder' in tool_error(
            tool, 'configs/ade20k', *checkpoint)
        assert 'config README.md is not a config file' in tool_error(
            tool, 'README.md', *checkpoint)
    assert f'--work-dir {a_file} is a file' in tool_error(
        'tools/train.py', SEG_CONFIG, '--work-dir', str(a_file))
    assert "--cfg-options takes KEY=VALUE entries, got 'foo'" in tool_error(
        'tools/train.py', SEG_CONFIG, '--cfg-options', 'foo')
    for value in ('-1', "'abc'", '2.5'):
        assert 'train_cfg.max_iters must be a whole number of at least 1' in \
            tool_error('tools/train.py', SEG_CONFIG, '--cfg-options',
                        f'train_cfg.max_iters={value}')
    for value in ("dict(type='Pretrained')", "{'type': 'Pretrained'}"):
        assert 'cannot parse a dict(...) or {...} value' in tool_error(
            'tools/train.py', SEG_CONFIG, '--cfg-options',
            f'model.backbone.init_cfg={value}')
    assert 'cannot set keys below a setting' in tool_error(
        'tools/train.py', SEG_CONFIG, '--cfg-options',
        'model.backbone.init_cfg=None',
        'model.backbone.init_cfg.type=Pretrained')
    assert 'takes KEY=VALUE entries' in tool_error(
        'tools/train.py', SEG_CONFIG, '--cfg-options', '=5')
    assert 'lies below the file' in tool_error(
        'tools/train.py', SEG_CONFIG, '--work-dir', str(a_file / 'sub'))
    for launcher, variable in (('pytorch', 'RANK'), ('slurm', 'SLURM_PROCID'),
                               ('mpi', 'OMPI_COMM_WORLD_RANK')):
        assert f'--launcher {launcher} needs the variables {variable}' in \
            tool_error('tools/train.py', SEG_CONFIG, '--launcher', launcher)
    # MMEngine's MPI set-up reads the address of the rank 0 process.
    assert 'MASTER_ADDR' in tool_error('tools/train.py', SEG_CONFIG,
                                       '--launcher', 'mpi')


def test_train_tool_rejects_invalid_settings_in_one_line(tmp_path):
    scope_config = 'configs/ade20k/upernet_mambascope_t.py'
    for option, message in [
        ('model.backbone.refine_ratio=0', 'refine_ratio must be in (0, 1]'),
        ('model.coarse_loss_weight=-1',
         'coarse_loss_weight must be a finite number of at least 0'),
        ('model.backbone.threshold=abc',
         "threshold must be a number, got 'abc'"),
        ('model.backbone.treshold=0.5',
         "'treshold' (did you mean 'threshold'?)"),
        ('model.backbone.gate_head.type=ScopeGateHaed',
         "The gate head of MambaScope is type='ScopeGateHead'"),
    ]:
        stderr = tool_error('tools/train.py', scope_config, '--work-dir',
                             str(tmp_path), '--cfg-options',
                             *cfg_options(SEG), option)
        assert 'Invalid setting:' in stderr
        assert message in stderr


def test_torchrun_gloo_two_processes(tmp_path):
    # tools/dist_train.sh and dist_test.sh start torchrun with
    # --nproc_per_node=2 and the pytorch launcher.
    work_dir = tmp_path / 'dist'
    env = dict(PYTHON=sys.executable, PORT='29517')
    output = _run([
        'bash', 'tools/dist_train.sh', SEG_CONFIG, '2', '--work-dir',
        str(work_dir), '--cfg-options', *cfg_options(SEG_TRAIN)
    ], env_extra=env)

    assert 'gloo' in output
    records = _scalars(work_dir)
    assert [r['iter'] for r in records if 'loss' in r] == [1, 2]
    assert (work_dir / 'iter_2.pth').is_file()

    output = _run([
        'bash', 'tools/dist_test.sh', SEG_CONFIG,
        str(work_dir / 'iter_2.pth'), '2', '--work-dir',
        str(tmp_path / 'dist_test'), '--cfg-options', *cfg_options(SEG)
    ], env_extra=env)
    assert 'mIoU' in output


@pytest.mark.parametrize('args, message', [
    (['tools/dist_train.sh'], 'missing arguments: got 0, need 2.'),
    (['tools/dist_train.sh', SEG_CONFIG, '--amp'],
     "NUM_PROCESSES must be a whole number of at least 1, got '--amp'."),
    (['tools/dist_test.sh', SEG_CONFIG, 'ckpt.pth', '0'],
     "NUM_PROCESSES must be a whole number of at least 1, got '0'."),
    (['tools/dist_test.sh', SEG_CONFIG, 'absent.pth', '2'],
     'CHECKPOINT not found: absent.pth'),
    (['tools/dist_train.sh', 'configs/absent.py', '2'],
     'CONFIG not found: configs/absent.py'),
])
def test_dist_scripts_check_arguments(args, message):
    result = subprocess.run(['bash', *args], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 2
    assert message in result.stderr
    assert 'Usage: bash tools/dist_' in result.stderr


def test_dist_scripts_check_python():
    # An interpreter without torch and mmscope, here one that always fails.
    result = subprocess.run(
        ['bash', 'tools/dist_train.sh', SEG_CONFIG, '2'], cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHON='false'))

    assert result.returncode == 2
    assert 'false cannot import torch and mmscope' in result.stderr
    assert 'PYTHON=.venv/bin/python' in result.stderr
