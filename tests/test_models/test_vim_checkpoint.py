import argparse
import logging
import math
import re
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger

from mmscope.models import MambaScope, VisionMamba
from mmscope.models.layers import resample_pos_embed
from mmscope.models.utils import convert_vim_state_dict

WIDTH, LAYERS, STATE = 32, 2, 16
INNER, RANK = 2 * WIDTH, math.ceil(WIDTH / 16)
CLS_VALUE = 1234.5
REPO_ROOT = Path(__file__).resolve().parents[2]


def official_vim_state_dict(width=WIDTH, layers=LAYERS, grid=14):
    """Build a state dict with the key layout of the official Vim files.

    The layout is written out here independently of mmscope's module tree:
    a (1, 1, C) class token, a (1, grid**2 + 1, C) position embedding whose
    class-token entry is at index grid**2 // 2, a 1000-class head.
    """
    generator = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=generator)

    inner, rank = 2 * width, math.ceil(width / 16)
    num_patches = grid * grid
    pos_embed = rand(1, num_patches + 1, width)
    pos_embed[:, num_patches // 2] = CLS_VALUE
    state = {
        'patch_embed.proj.weight': rand(width, 3, 16, 16),
        'patch_embed.proj.bias': rand(width),
        'cls_token': rand(1, 1, width),
        'pos_embed': pos_embed,
        'norm_f.weight': rand(width),
        'head.weight': rand(1000, width),
        'head.bias': rand(1000),
    }
    for i in range(layers):
        prefix = f'layers.{i}.'
        state[prefix + 'norm.weight'] = rand(width)
        state[prefix + 'mixer.in_proj.weight'] = rand(2 * inner, width)
        state[prefix + 'mixer.out_proj.weight'] = rand(width, inner)
        for suffix in ('', '_b'):
            state[prefix + f'mixer.conv1d{suffix}.weight'] = rand(inner, 1, 4)
            state[prefix + f'mixer.conv1d{suffix}.bias'] = rand(inner)
            state[prefix + f'mixer.x_proj{suffix}.weight'] = rand(
                rank + 2 * STATE, inner)
            state[prefix + f'mixer.dt_proj{suffix}.weight'] = rand(inner, rank)
            state[prefix + f'mixer.dt_proj{suffix}.bias'] = rand(inner)
        state[prefix + 'mixer.A_log'] = rand(inner, STATE)
        state[prefix + 'mixer.A_b_log'] = rand(inner, STATE)
        state[prefix + 'mixer.D'] = rand(inner)
        state[prefix + 'mixer.D_b'] = rand(inner)
    return state


@pytest.fixture
def official_file(tmp_path):
    state = official_vim_state_dict()
    path = tmp_path / 'vim_official.pth'
    torch.save({'model': state, 'epoch': 299}, path)
    return path, state


def _backbone(path, **overrides):
    settings = dict(
        embed_dims=WIDTH, num_layers=LAYERS, img_size=512,
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    settings.update(overrides)
    return VisionMamba(**settings)


def test_official_layout_loads_every_body_tensor(official_file):
    path, state = official_file
    backbone = _backbone(path)

    backbone.init_weights()

    loaded = backbone.state_dict()
    body_keys = [k for k in state
                 if not k.startswith(('head.', 'cls_token', 'pos_embed'))]
    assert len(body_keys) == 3 + LAYERS * 17
    for key in body_keys:
        assert torch.equal(loaded[key], state[key]), key


def test_class_token_entry_removed(official_file):
    path, state = official_file
    backbone = _backbone(path)

    backbone.init_weights()

    grid_part = torch.cat(
        [state['pos_embed'][:, :98], state['pos_embed'][:, 99:]], dim=1)
    expected = resample_pos_embed(grid_part, (14, 14), (32, 32))
    assert backbone.pos_embed.shape == (1, 1024, WIDTH)
    torch.testing.assert_close(backbone.pos_embed.data, expected)
    assert backbone.pos_embed.abs().max() < CLS_VALUE / 10


def test_same_grid_keeps_position_values(tmp_path):
    state = official_vim_state_dict()
    path = tmp_path / 'vim.pth'
    torch.save({'model': state}, path)
    backbone = _backbone(path, img_size=224)

    backbone.init_weights()

    expected = torch.cat(
        [state['pos_embed'][:, :98], state['pos_embed'][:, 99:]], dim=1)
    assert torch.equal(backbone.pos_embed.data, expected)


def test_official_grid_is_square_for_same_size():
    # 36 entries form a 6x6 grid. A 4x9 model has as many cells but needs
    # the resampled embedding.
    source = torch.randn(1, 37, 8)
    converted, _ = convert_vim_state_dict(
        {'pos_embed': source, 'cls_token': torch.zeros(1, 1, 8)},
        {'pos_embed': (4, 9)})

    patches = torch.cat([source[:, :18], source[:, 19:]], dim=1)
    expected = resample_pos_embed(patches, (6, 6), (4, 9))
    assert torch.equal(converted['pos_embed'], expected)


def test_unknown_source_grid_raises():
    with pytest.raises(ValueError, match='24 patch entries.*5x6 grid'):
        convert_vim_state_dict({'pos_embed': torch.randn(1, 24, 8)},
                               {'pos_embed': (5, 6)})


def test_stated_source_grid_used():
    source = torch.randn(1, 24, 8)
    converted, _ = convert_vim_state_dict(
        {'pos_embed': source}, {'pos_embed': (5, 6), 'coarse': (3, 3)},
        source_grids={'pos_embed': (4, 6)})

    assert torch.equal(converted['pos_embed'],
                       resample_pos_embed(source, (4, 6), (5, 6)))
    assert torch.equal(converted['coarse'],
                       resample_pos_embed(source, (4, 6), (3, 3)))


@contextmanager
def _log_records():
    """Collect the records that MMEngine's current logger emits."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_resampling_is_logged():
    with _log_records() as records:
        convert_vim_state_dict({'pos_embed': torch.randn(1, 24, 8)},
                               {'pos_embed': (4, 4)},
                               source_grids={'pos_embed': (4, 6)})
        convert_vim_state_dict({'pos_embed': torch.randn(1, 16, 8)},
                               {'pos_embed': (4, 4)})

    messages = [record.getMessage() for record in records
                if record.levelno == logging.INFO]
    assert messages == ["Resampled the checkpoint's pos_embed from the grid "
                        '4x6 to 4x4 (bicubic).']


def test_derived_coarse_grid_names_source():
    # A Vim checkpoint has no coarse_pos_embed; MambaScope's comes from
    # pos_embed.
    with _log_records() as records:
        convert_vim_state_dict({'pos_embed': torch.randn(1, 16, 8)},
                               {'pos_embed': (4, 4),
                                'coarse_pos_embed': (2, 2)},
                               source_grids={'pos_embed': (4, 4)})

    messages = [record.getMessage() for record in records
                if record.levelno == logging.INFO]
    assert messages == ["Resampled the checkpoint's pos_embed from the grid "
                        '4x4 to 2x2 for coarse_pos_embed (bicubic).']


def test_guessed_grid_warns():
    with _log_records() as records:
        convert_vim_state_dict({'pos_embed': torch.randn(1, 16, 8)},
                               {'pos_embed': (2, 8)})
        convert_vim_state_dict({'pos_embed': torch.randn(1, 36, 8)},
                               {'pos_embed': (4, 4)})

    warnings = [record.getMessage() for record in records
                if record.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "read as 2x8, the model's grid" in warnings[0]
    assert 'read as 6x6, a square grid' in warnings[1]
    assert 'pos_embed_grid=(rows, columns)' in warnings[1]


def test_stored_config_grid_used(tmp_path):
    source = VisionMamba(embed_dims=WIDTH, num_layers=LAYERS,
                         img_size=(32, 128))
    model_cfg = Config(dict(model=dict(
        type='EncoderDecoder',
        backbone=dict(type='mmscope.VisionMamba', embed_dims=WIDTH,
                      num_layers=LAYERS, img_size=(32, 128)))))
    path = tmp_path / 'runner.pth'
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in source.state_dict().items()},
                'meta': {'cfg': model_cfg.pretty_text}}, path)
    backbone = _backbone(path, img_size=64,
                         init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                       prefix='backbone.'))

    # 2x8 has as many entries as the model's 4x4 grid, so only the stored
    # config distinguishes them.
    backbone.init_weights()

    expected = resample_pos_embed(source.pos_embed.detach(), (2, 8), (4, 4))
    assert torch.equal(backbone.pos_embed.detach(), expected)


@pytest.mark.parametrize('text', [
    'model = dict(backbone=dict(type="ResNet", depth=50))',
    'model = dict(neck=dict(type="FPN"))',
    'model = dict(backbone=dict(type="VisionMamba", img_size=(31, 31)))',
    'this is not python',
])
def test_stored_config_without_grid_guesses(tmp_path, text):
    source = VisionMamba(embed_dims=WIDTH, num_layers=LAYERS, img_size=64)
    path = tmp_path / 'runner.pth'
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in source.state_dict().items()},
                'meta': {'cfg': text}}, path)
    backbone = _backbone(path, img_size=64,
                         init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                       prefix='backbone.'))

    backbone.init_weights()

    assert torch.equal(backbone.pos_embed.detach(), source.pos_embed.detach())


def test_stated_grid_of_wrong_size_raises():
    with pytest.raises(ValueError, match='24 patch entries.*3x6 has 18'):
        convert_vim_state_dict({'pos_embed': torch.randn(1, 24, 8)},
                               {'pos_embed': (5, 6)},
                               source_grids={'pos_embed': (3, 6)})


def test_init_cfg_grid_loads_nonsquare_file(tmp_path):
    source = VisionMamba(embed_dims=WIDTH, num_layers=LAYERS,
                         img_size=(64, 96))
    path = tmp_path / 'trained.pth'
    torch.save({'state_dict': source.state_dict()}, path)
    backbone = _backbone(path, img_size=(80, 80))

    with pytest.raises(ValueError, match='pos_embed_grid=\\(rows, columns\\)'):
        backbone.init_weights()

    backbone = _backbone(path, img_size=(80, 80))
    backbone.init_cfg['pos_embed_grid'] = (4, 6)
    backbone.init_weights()
    expected = resample_pos_embed(source.pos_embed.detach(), (4, 6), (5, 5))
    assert torch.equal(backbone.pos_embed.detach(), expected)


def test_convert_tool_nonsquare_loads_in_scope(tmp_path, official_file):
    import subprocess
    import sys
    path, state = official_file
    out = tmp_path / 'converted.pth'
    subprocess.run(
        [sys.executable, str(REPO_ROOT / 'tools' / 'convert_vim_checkpoint.py'),
         str(path), str(out), '--img-size', '64', '96'], check=True)

    # The converted 4x6 grid has 24 cells, neither square nor the 5x5 of
    # this model, so only the grid in the file's meta gives the source grid.
    scope = MambaScope(
        embed_dims=WIDTH, num_layers=LAYERS, img_size=(80, 80),
        gate_head=dict(type='ScopeGateHead', num_classes=3),
        init_cfg=dict(type='Pretrained', checkpoint=str(out)))
    scope.init_weights()

    converted = torch.load(out)['state_dict']['pos_embed']
    assert torch.equal(scope.pos_embed.detach(),
                       resample_pos_embed(converted, (4, 6), (5, 5)))
    assert torch.equal(scope.coarse_pos_embed.detach(),
                       resample_pos_embed(converted, (4, 6), (3, 3)))


def test_stated_grid_applies_to_coarse_pos_embed(tmp_path):
    # A MambaScope checkpoint trained at 64x128 has a 4x8 fine and a 2x4
    # coarse grid; the model at 96x96 has 6x6 and 3x3.
    source = MambaScope(embed_dims=WIDTH, num_layers=LAYERS,
                        img_size=(64, 128),
                        gate_head=dict(type='ScopeGateHead', num_classes=3))
    path = tmp_path / 'scope.pth'
    torch.save({'state_dict': source.state_dict()}, path)

    def target(**init):
        return MambaScope(
            embed_dims=WIDTH, num_layers=LAYERS, img_size=96,
            gate_head=dict(type='ScopeGateHead', num_classes=3),
            init_cfg=dict(type='Pretrained', checkpoint=str(path), **init))

    with pytest.raises(ValueError, match="checkpoint's pos_embed with 32"):
        target().init_weights()

    scope = target(pos_embed_grid=(4, 8))
    scope.init_weights()
    assert torch.equal(
        scope.pos_embed.detach(),
        resample_pos_embed(source.pos_embed.detach(), (4, 8), (6, 6)))
    assert torch.equal(
        scope.coarse_pos_embed.detach(),
        resample_pos_embed(source.coarse_pos_embed.detach(), (2, 4), (3, 3)))


def test_renamed_key_raises_naming_it(tmp_path):
    state = official_vim_state_dict()
    state['layers.1.mixer.x_proj_bwd.weight'] = state.pop(
        'layers.1.mixer.x_proj_b.weight')
    path = tmp_path / 'renamed.pth'
    torch.save({'model': state}, path)
    backbone = _backbone(path)

    with pytest.raises(RuntimeError, match='x_proj_bwd') as error:
        backbone.init_weights()
    assert 'layers.1.mixer.x_proj_b.weight' in str(error.value)


def test_wrong_shape_raises_naming_it(tmp_path):
    state = official_vim_state_dict()
    state['layers.0.mixer.A_log'] = torch.zeros(INNER, 8)
    path = tmp_path / 'shape.pth'
    torch.save({'model': state}, path)
    backbone = _backbone(path)

    with pytest.raises(RuntimeError, match=r'layers\.0\.mixer\.A_log'):
        backbone.init_weights()


def test_width_mismatch_raises(official_file):
    path, _ = official_file
    backbone = _backbone(path, embed_dims=48, num_layers=LAYERS + 1)

    with pytest.raises(RuntimeError) as error:
        backbone.init_weights()

    message = str(error.value)
    assert 'shape mismatches' in message
    assert f'The checkpoint has embed_dims {WIDTH}, num_layers {LAYERS}.' \
        in message
    assert (f'Set model.backbone.embed_dims={WIDTH} '
            f'model.backbone.num_layers={LAYERS}') in message


def test_scope_checkpoint_into_vim_and_other_classes(tmp_path):
    source = MambaScope(embed_dims=WIDTH, num_layers=LAYERS, img_size=64,
                        gate_head=dict(type='ScopeGateHead', num_classes=3))
    path = tmp_path / 'scope.pth'
    torch.save({'state_dict': source.state_dict()}, path)
    vim = _backbone(path, img_size=64)
    scope = MambaScope(embed_dims=WIDTH, num_layers=LAYERS, img_size=64,
                       gate_head=dict(type='ScopeGateHead', num_classes=5),
                       init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    initial_fc = scope.gate_head.fc.weight.detach().clone()

    with _log_records() as records:
        vim.init_weights()
        scope.init_weights()

    warnings = [record.getMessage() for record in records
                if record.levelno == logging.WARNING]
    assert any('is of a MambaScope backbone' in warning
               for warning in warnings)
    assert any('gate head of another class count' in warning
               for warning in warnings)
    assert torch.equal(vim.pos_embed.detach(), source.pos_embed.detach())
    assert torch.equal(scope.layers[0].mixer.A_log.detach(),
                       source.layers[0].mixer.A_log.detach())
    assert torch.equal(scope.gate_head.fc.weight.detach(), initial_fc)


def test_missing_file_raises(tmp_path):
    backbone = _backbone(tmp_path / 'absent.pth')
    with pytest.raises(FileNotFoundError, match='absent.pth'):
        backbone.init_weights()


def test_mmscope_checkpoint_with_prefix(tmp_path):
    source = VisionMamba(embed_dims=WIDTH, num_layers=LAYERS, img_size=64)
    path = tmp_path / 'segmentor.pth'
    torch.save(
        {'state_dict': {f'backbone.{k}': v
                        for k, v in source.state_dict().items()},
         'meta': {}}, path)
    # MMEngine's Pretrained loading also reads 'backbone' as 'backbone.'.
    for prefix in ('backbone.', 'backbone'):
        target = _backbone(path, img_size=64,
                           init_cfg=dict(type='Pretrained',
                                         checkpoint=str(path), prefix=prefix))

        target.init_weights()

        for key, value in source.state_dict().items():
            assert torch.equal(target.state_dict()[key], value), key


def test_init_cfg_list_with_pretrained(official_file):
    path, state = official_file
    pretrained = dict(type='Pretrained', checkpoint=str(path))
    backbone = _backbone(path, init_cfg=[pretrained])

    backbone.init_weights()

    assert torch.equal(backbone.layers[0].mixer.A_log.data,
                       state['layers.0.mixer.A_log'])

    mixed = _backbone(path, init_cfg=[
        pretrained, dict(type='Constant', val=0, layer='Linear')])
    with pytest.raises(ValueError, match='mixes a Pretrained entry'):
        mixed.init_weights()


def test_does_not_modify_checkpoint_file(official_file):
    path, state = official_file
    before = path.read_bytes()

    _backbone(path).init_weights()

    assert path.read_bytes() == before


def test_pretrained_and_init_cfg_together():
    with pytest.raises(ValueError, match='not both'):
        VisionMamba(pretrained='a.pth',
                    init_cfg=dict(type='Pretrained', checkpoint='a.pth'))


def test_convert_tool_output_loads(tmp_path, official_file):
    import subprocess
    import sys
    path, state = official_file
    out = tmp_path / 'converted.pth'

    subprocess.run(
        [sys.executable, str(REPO_ROOT / 'tools' / 'convert_vim_checkpoint.py'), str(path),
         str(out), '--img-size', '512'], check=True)
    backbone = _backbone(out)
    backbone.init_weights()

    assert torch.equal(backbone.state_dict()['norm_f.weight'],
                       state['norm_f.weight'])
    assert backbone.pos_embed.abs().max() < CLS_VALUE / 10


def test_convert_tool_rejects_non_vim_file(tmp_path):
    import subprocess
    import sys
    source = VisionMamba(embed_dims=WIDTH, num_layers=LAYERS, img_size=64)
    path = tmp_path / 'trained.pth'
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in source.state_dict().items()}}, path)

    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'tools' / 'convert_vim_checkpoint.py'),
         str(path), str(tmp_path / 'out.pth')],
        capture_output=True, text=True)

    assert result.returncode != 0
    assert "not an official Vim checkpoint: its weights have no 'pos_embed' " \
        "and 'cls_token'" in result.stderr
    assert not (tmp_path / 'out.pth').exists()

    torch.save({'model': source.state_dict()}, path)
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'tools' / 'convert_vim_checkpoint.py'),
         str(path), str(tmp_path / 'out.pth')],
        capture_output=True, text=True)

    assert "its weights have no 'cls_token'." in result.stderr


def test_convert_tool_rejects_tiny_size(tmp_path, official_file):
    import subprocess
    import sys
    path, _ = official_file

    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'tools' / 'convert_vim_checkpoint.py'),
         str(path), str(tmp_path / 'out.pth'), '--img-size', '7'],
        capture_output=True, text=True)

    assert result.returncode != 0
    assert '--img-size [7] is smaller than the patch size 16' in result.stderr


def test_convert_tool_rejects_bad_paths(tmp_path, official_file):
    import subprocess
    import sys
    path, _ = official_file
    text_file = tmp_path / 'notes.pth'
    text_file.write_text('not a checkpoint')
    tool = str(REPO_ROOT / 'tools' / 'convert_vim_checkpoint.py')

    result = subprocess.run(
        [sys.executable, tool, str(text_file), str(tmp_path / 'out.pth')],
        capture_output=True, text=True)
    assert result.returncode != 0
    assert 'is not a PyTorch checkpoint file' in result.stderr

    result = subprocess.run([sys.executable, tool, str(path), str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert 'is a folder; give the path of the output file' in result.stderr

    result = subprocess.run(
        [sys.executable, tool, str(path), str(text_file / 'out.pth')],
        capture_output=True, text=True)
    assert result.returncode != 0
    assert f'lies below the file {text_file}' in result.stderr


@pytest.mark.parametrize('grid', [(4, 6, 1), (0, 6), 4, ('4', '6'), '4x6',
                                  (True, 6), (4.0, 6)])
def test_stated_grid_malformed_raises(tmp_path, grid):
    message = (r'pos_embed_grid must be \(rows, columns\) with two positive '
               r'whole numbers, such as \(32, 32\), got ' +
               re.escape(repr(grid)))
    with pytest.raises(ValueError, match=message):
        convert_vim_state_dict({'pos_embed': torch.randn(1, 24, 8)},
                               {'pos_embed': (5, 6)},
                               source_grids={'pos_embed': grid})

    path = tmp_path / 'trained.pth'
    source = VisionMamba(embed_dims=WIDTH, num_layers=LAYERS,
                         img_size=(64, 96))
    torch.save({'state_dict': source.state_dict()}, path)
    backbone = _backbone(path, img_size=(80, 80))
    backbone.init_cfg['pos_embed_grid'] = grid
    with pytest.raises(ValueError, match=message):
        backbone.init_weights()


def test_official_non_square_grid_raises():
    state = {'pos_embed': torch.randn(1, 30, 8),
             'cls_token': torch.zeros(1, 1, 8)}
    with pytest.raises(ValueError, match='square position grid.*29 patch'):
        convert_vim_state_dict(state, {'pos_embed': (4, 6)})


def test_pos_embed_without_class_entry_kept():
    # 16 = 4x4 entries, and 15 is not square: no class-token entry.
    source = torch.randn(1, 16, 8)
    state = {'pos_embed': source, 'cls_token': torch.zeros(1, 1, 8)}

    with _log_records() as records:
        converted, _ = convert_vim_state_dict(state, {'pos_embed': (4, 4)})

    assert torch.equal(converted['pos_embed'], source)
    warnings = [record.getMessage() for record in records
                if record.levelno == logging.WARNING]
    assert any('16 = 4x4 entries and so no class-token entry' in warning
               for warning in warnings)


def _convert(*args):
    import subprocess
    import sys
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / 'tools' / 'convert_vim_checkpoint.py'),
         *map(str, args)], capture_output=True, text=True)


def test_convert_tool_keeps_its_source(tmp_path, official_file):
    path, _ = official_file
    before = path.read_bytes()

    result = _convert(path, path)

    assert result.returncode != 0
    assert 'is the source file; write the converted checkpoint' in \
        result.stderr
    assert path.read_bytes() == before


def test_convert_tool_checks_patch_size(tmp_path, official_file):
    path, _ = official_file

    result = _convert(path, tmp_path / 'out.pth', '--patch-size', '8')

    assert result.returncode != 0
    assert 'embeds 16x16 patches, but --patch-size is 8' in result.stderr
    assert '--patch-size 16' in result.stderr
    assert not (tmp_path / 'out.pth').exists()


def test_convert_tool_unwritable_destination(tmp_path, official_file):
    path, _ = official_file
    # File systems limit a file name to 255 bytes, so this one cannot be
    # created.
    dst = tmp_path / ('x' * 300 + '.pth')

    result = _convert(path, dst)

    assert result.returncode != 0
    assert f'Cannot write {dst}' in result.stderr
    assert 'Traceback' not in result.stderr


def test_pos_embed_of_wrong_rank_raises():
    state = {'pos_embed': torch.randn(197, 8),
             'cls_token': torch.zeros(1, 1, 8)}
    with pytest.raises(ValueError, match=r"pos_embed has shape \(197, 8\)"):
        convert_vim_state_dict(state, {'pos_embed': (14, 14)})


def test_convert_tool_rejects_converted_file(tmp_path, official_file):
    path, _ = official_file
    converted = tmp_path / 'converted.pth'
    assert _convert(path, converted, '--img-size', '64').returncode == 0

    result = _convert(converted, tmp_path / 'again.pth')

    assert result.returncode != 0
    assert 'was already converted by this tool' in result.stderr
    assert not (tmp_path / 'again.pth').exists()


def test_convert_tool_rejects_non_square_patches(tmp_path):
    state = official_vim_state_dict()
    state['patch_embed.proj.weight'] = torch.zeros(WIDTH, 3, 8, 16)
    path = tmp_path / 'wide_patches.pth'
    torch.save({'model': state}, path)

    result = _convert(path, tmp_path / 'out.pth', '--patch-size', '8')

    assert result.returncode != 0
    assert 'embeds 8x16 patches; mmscope supports square patches only' in \
        result.stderr


@pytest.mark.parametrize('args, warned', [
    (argparse.Namespace(model='vim_tiny_patch16_224_bimambav2_final_pool_'
                        'mean_abs_pos_embed_with_midclstok_div2'), False),
    (argparse.Namespace(model='vim_tiny_patch16_224_bimambav2'), True),
    (argparse.Namespace(model='vim_tiny_midclstok',
                        use_middle_cls_token=False), True),
    (None, False),
])
def test_class_token_layout_warning(tmp_path, args, warned):
    path = tmp_path / 'vim.pth'
    torch.save({'model': official_vim_state_dict(), 'args': args}, path)
    backbone = _backbone(path)

    with _log_records() as records:
        backbone.init_weights()

    warnings = [record.getMessage() for record in records
                if record.levelno == logging.WARNING]
    assert any('do not name a middle class token' in warning
               for warning in warnings) == warned
