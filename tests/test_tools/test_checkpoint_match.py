"""Rejection of checkpoints that do not contain the model's weights."""
import logging
import os

import pytest
import torch
from mmengine.logging import MMLogger
from torch import nn

from mmscope.apis import init_scope_model, load_config
from mmscope.utils import (check_checkpoint_fits, check_checkpoint_matches,
                           check_weights_before_runner, checkpoint_mismatches)
from mmscope.utils.checkpoint_file import FORCE_FULL_LOAD_ENV_VAR
from tests.reduced import SEG, cfg_options
from tests.test_tools.test_train_tool import REPO_ROOT
from tests.tool_runs import tool_error

SEG_CONFIG = 'configs/ade20k/upernet_mambascope_t.py'


@pytest.fixture(scope='module')
def seg_checkpoint(tmp_path_factory):
    """Write a checkpoint of the reduced MambaScope UperNet to disk."""
    cfg = load_config(str(REPO_ROOT / SEG_CONFIG), SEG)
    model = init_scope_model(cfg, None, 'cpu')
    path = tmp_path_factory.mktemp('checkpoint') / 'seg.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path, model


def test_mismatches_name_each_kind():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    state = {
        'module.0.weight': torch.zeros(3, 2),
        '0.bias': torch.zeros(4),
        'extra.weight': torch.zeros(1),
    }

    missing, unexpected, mismatched = checkpoint_mismatches(model, state)

    assert missing == ['1.weight', '1.bias']
    assert unexpected == ['extra.weight']
    assert mismatched == ['0.bias: checkpoint (4,) vs model (3,)']


def test_own_state_dict_matches(seg_checkpoint):
    _, model = seg_checkpoint

    assert checkpoint_mismatches(model, model.state_dict()) == ([], [], [])


def test_unused_keys_only_warn(tmp_path):
    model = nn.Linear(2, 3)
    path = tmp_path / 'extra.pth'
    torch.save({'state_dict': dict(model.state_dict(),
                                   **{'head.weight': torch.zeros(1)})}, path)

    check_checkpoint_matches(model, str(path))

    torch.save({'state_dict': {'weight': torch.zeros(3, 2)}}, path)
    with pytest.raises(ValueError, match='1 missing keys: bias'):
        check_checkpoint_matches(model, str(path))


def test_init_scope_model_rejects_other_width(seg_checkpoint, capfd):
    path, _ = seg_checkpoint
    cfg = load_config(
        str(REPO_ROOT / SEG_CONFIG),
        dict(SEG, **{
            'model.backbone.embed_dims': 48,
            'model.decode_head.in_channels': [48] * 4,
            'model.auxiliary_head.in_channels': 48,
        }))

    with pytest.raises(ValueError, match='shape mismatches: backbone.'):
        init_scope_model(cfg, str(path), 'cpu')

    # The error comes before loading, without MMEngine's warnings.
    output = ''.join(capfd.readouterr())
    assert 'size mismatch' not in output
    assert 'do not match exactly' not in output


def test_test_tool_rejects_other_depth(seg_checkpoint):
    path, _ = seg_checkpoint
    overrides = dict(SEG, **{'model.backbone.num_layers': 3})
    stderr = tool_error('tools/test.py', SEG_CONFIG, str(path),
                        '--cfg-options', *cfg_options(overrides))

    assert 'does not contain the weights of this model' in stderr
    assert 'missing keys: backbone.layers.2.' in stderr


def test_train_tool_rejects_other_resume_model(seg_checkpoint, tmp_path):
    path, _ = seg_checkpoint
    overrides = dict(SEG, **{'model.backbone.num_layers': 3})
    stderr = tool_error('tools/train.py', SEG_CONFIG, '--work-dir',
                        str(tmp_path / 'work'), '--resume', str(path),
                        '--cfg-options', *cfg_options(overrides))

    assert '--resume:' in stderr
    assert 'missing keys: backbone.layers.2.' in stderr
    assert not (tmp_path / 'work').exists()


def _broken_files(tmp_path, checkpoint):
    """Write an empty, a text and a truncated checkpoint file."""
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    text = tmp_path / 'notes.pth'
    text.write_text('step 1: train the model\n')
    truncated = tmp_path / 'truncated.pth'
    content = checkpoint.read_bytes()
    truncated.write_bytes(content[:len(content) // 2])
    # Cut this short, the zip archive makes PyTorch seek before the start.
    short = tmp_path / 'short.pth'
    short.write_bytes(content[:5000])
    return [(empty, 'is not a PyTorch checkpoint file: it is empty'),
            (text, 'does not start like a file that torch.save writes'),
            (truncated, 'is a damaged or truncated checkpoint'),
            (short, 'is a damaged or truncated checkpoint')]


def test_broken_files_named(seg_checkpoint, tmp_path):
    path, model = seg_checkpoint
    cfg = load_config(str(REPO_ROOT / SEG_CONFIG), SEG)

    for broken, message in _broken_files(tmp_path, path):
        with pytest.raises(ValueError, match=message):
            check_checkpoint_matches(model, str(broken))
        with pytest.raises(ValueError, match=message):
            init_scope_model(cfg, str(broken), 'cpu')


def test_test_tool_names_broken_file(seg_checkpoint, tmp_path):
    path, _ = seg_checkpoint
    broken, message = _broken_files(tmp_path, path)[1]
    stderr = tool_error('tools/test.py', SEG_CONFIG, str(broken),
                        '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                        *cfg_options(SEG))

    assert message in stderr
    # The file is checked before the runner creates the work folder.
    assert not (tmp_path / 'work').exists()


def test_backbone_only_checkpoint_gets_init_cfg_advice(seg_checkpoint,
                                                       tmp_path):
    _, model = seg_checkpoint
    path = tmp_path / 'backbone.pth'
    torch.save({'model': model.backbone.state_dict()}, path)

    with pytest.raises(ValueError, match='It contains backbone weights only') \
            as error:
        check_checkpoint_matches(model, str(path))
    assert 'model.backbone.init_cfg.type=Pretrained' in str(error.value)

    # A whole-model checkpoint of another size keeps the config advice.
    torch.save({'state_dict': {'decode_head.conv_seg.weight':
                               torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match='Use the config the checkpoint'):
        check_checkpoint_matches(model, str(path))


@pytest.mark.parametrize('device, message', [
    ('gpu', "device 'gpu' is not a PyTorch device"),
    pytest.param('cuda', 'finds no CUDA device', marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason='CUDA is available')),
])
def test_init_scope_model_checks_device(device, message):
    cfg = load_config(str(REPO_ROOT / SEG_CONFIG), SEG)

    with pytest.raises(ValueError, match=message):
        init_scope_model(cfg, None, device)


def test_fit_hint_only_for_mismatches(seg_checkpoint, tmp_path):
    path, model = seg_checkpoint
    text = tmp_path / 'notes.pth'
    text.write_text('step 1: train the model\n')
    other = tmp_path / 'other.pth'
    torch.save({'state_dict': {'decode_head.conv_seg.weight':
                               torch.zeros(1)}}, other)

    with pytest.raises(SystemExit) as error:
        check_checkpoint_fits(model, str(text), 'CHECKPOINT', 'Add HINT.')
    assert str(error.value).startswith('CHECKPOINT: ')
    assert 'HINT' not in str(error.value)

    with pytest.raises(SystemExit) as error:
        check_checkpoint_fits(model, str(other), 'CHECKPOINT', 'Add HINT.')
    assert 'missing keys' in str(error.value)
    assert str(error.value).endswith('Add HINT.')


def test_init_scope_model_keeps_caller_config(seg_checkpoint):
    path, model = seg_checkpoint
    cfg = load_config(str(REPO_ROOT / SEG_CONFIG), SEG)
    cfg.model.backbone.init_cfg = dict(type='Pretrained',
                                       checkpoint='vim_t.pth')
    before = cfg.to_dict()

    built = init_scope_model(cfg, str(path), 'cpu')

    assert cfg.to_dict() == before
    for key, value in model.state_dict().items():
        assert torch.equal(built.state_dict()[key], value), key


def test_init_scope_model_takes_config_path(seg_checkpoint, tmp_path):
    path, _ = seg_checkpoint

    model = init_scope_model(str(REPO_ROOT / 'configs/ade20k/upernet_vim_t.py'),
                             None, 'cpu')
    assert type(model.backbone).__name__ == 'VisionMamba'

    with pytest.raises(FileNotFoundError, match='is a folder'):
        init_scope_model(load_config(str(REPO_ROOT / SEG_CONFIG), SEG),
                         str(tmp_path), 'cpu')
    with pytest.raises(TypeError, match='invalid cfg: got dict'):
        init_scope_model({'model': {}}, None, 'cpu')


def test_load_from_other_heads_passes(seg_checkpoint):
    from mmscope.utils.checkpoint_match import check_backbone_loaded
    path, _ = seg_checkpoint
    # Fine-tuning on a data set with other classes changes the heads only.
    cfg = load_config(str(REPO_ROOT / SEG_CONFIG), dict(SEG, **{
        'train_dataloader.dataset.metainfo.classes': ('a', 'b', 'c', 'd'),
        'model.decode_head.num_classes': 4,
        'model.auxiliary_head.num_classes': 4,
        'model.backbone.gate_head.num_classes': 4}))
    model = init_scope_model(cfg, None, 'cpu')

    check_backbone_loaded(model, str(path))


def test_load_from_other_width_rejected(seg_checkpoint):
    from mmscope.utils.checkpoint_match import check_backbone_loaded
    path, _ = seg_checkpoint
    # At another width only the gate head's bias would load.
    cfg = load_config(str(REPO_ROOT / SEG_CONFIG), dict(SEG, **{
        'model.backbone.embed_dims': 48,
        'model.decode_head.in_channels': [48] * 4,
        'model.auxiliary_head.in_channels': 48}))
    model = init_scope_model(cfg, None, 'cpu')

    with pytest.raises(ValueError, match='sets 0% of the backbone weights'):
        check_backbone_loaded(model, str(path))


def test_train_tool_rejects_backbone_only_load_from(seg_checkpoint,
                                                    tmp_path):
    path, model = seg_checkpoint
    backbone_only = tmp_path / 'vim_layout.pth'
    torch.save({'model': model.backbone.state_dict()}, backbone_only)

    stderr = tool_error('tools/train.py', SEG_CONFIG, '--work-dir',
                        str(tmp_path / 'work'), '--cfg-options',
                        *cfg_options(SEG), f'load_from={backbone_only}')

    assert 'load_from:' in stderr
    assert 'of the backbone weights of this model' in stderr
    assert 'model.backbone.init_cfg.type=Pretrained' in stderr
    assert not (tmp_path / 'work').exists()


def test_train_tool_checks_init_cfg_first(seg_checkpoint, tmp_path):
    path, _ = seg_checkpoint
    overrides = dict(SEG, **{
        'model.backbone.init_cfg.type': 'Pretrained',
        'model.backbone.init_cfg.checkpoint': str(path)})
    overrides.pop('model.backbone.init_cfg')

    stderr = tool_error('tools/train.py', SEG_CONFIG, '--work-dir',
                        str(tmp_path / 'work'), '--cfg-options',
                        *cfg_options(overrides))

    assert 'model.backbone.init_cfg: Cannot load' in stderr
    assert 'model.backbone.init_cfg.prefix=backbone.' in stderr
    assert not (tmp_path / 'work').exists()


def test_init_cfg_check_logs_errors_only(seg_checkpoint, monkeypatch):
    # The runner loads init_cfg again and logs its notices then, so the
    # check before the runner must not log them a first time.
    path, _ = seg_checkpoint
    # The check allows runner checkpoints for the process, as the tools do.
    monkeypatch.setenv(FORCE_FULL_LOAD_ENV_VAR, '1')
    cfg = load_config(str(REPO_ROOT / SEG_CONFIG), SEG)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', prefix='backbone.',
                                       checkpoint=str(path))
    logger = MMLogger.get_current_instance()
    level = logger.level
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        check_weights_before_runner(cfg)
    finally:
        logger.removeHandler(handler)

    about_checkpoint = [record.getMessage() for record in records
                        if str(path) in record.getMessage()]
    assert about_checkpoint == []
    assert logger.level == level


def test_init_scope_model_restores_weights_only(seg_checkpoint, monkeypatch):
    # The full unpickler is allowed only while the checkpoint loads.
    path, _ = seg_checkpoint
    monkeypatch.delenv(FORCE_FULL_LOAD_ENV_VAR, raising=False)

    init_scope_model(load_config(str(REPO_ROOT / SEG_CONFIG), SEG), str(path),
                     'cpu')

    assert FORCE_FULL_LOAD_ENV_VAR not in os.environ
