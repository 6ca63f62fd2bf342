import pytest
import torch

from mmscope.models import MambaScope, VisionMamba
from mmscope.models.layers import resample_pos_embed
from tests.test_models.test_vim_checkpoint import (CLS_VALUE, LAYERS, WIDTH,
                                                   official_vim_state_dict)

GATE = dict(type='ScopeGateHead', num_classes=150)


def _pair(path):
    init_cfg = dict(type='Pretrained', checkpoint=str(path))
    common = dict(embed_dims=WIDTH, num_layers=LAYERS, img_size=512,
                  init_cfg=init_cfg)
    return VisionMamba(**common), MambaScope(gate_head=GATE, **common)


def test_official_layout_loads_like_vision_mamba(tmp_path):
    state = official_vim_state_dict()
    path = tmp_path / 'vim.pth'
    torch.save({'model': state}, path)
    vim, scope = _pair(path)

    vim.init_weights()
    scope.init_weights()

    vim_state = vim.state_dict()
    for key, value in scope.state_dict().items():
        if key.startswith(('coarse_pos_embed', 'reuse.', 'gate_head.')):
            continue
        if key.startswith('multi_scale.'):
            continue
        assert torch.equal(value, vim_state[key]), key


def test_gate_init_cfg_applies_after_load(tmp_path):
    # The official file has no gate head, so the gate head's own init_cfg
    # initialises it.
    path = tmp_path / 'vim.pth'
    torch.save({'model': official_vim_state_dict()}, path)
    gate = dict(GATE, init_cfg=dict(type='Constant', layer='Linear', val=0.5,
                                    bias=0.0))
    scope = MambaScope(
        gate_head=gate, embed_dims=WIDTH, num_layers=LAYERS, img_size=512,
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))

    scope.init_weights()

    linears = [module for module in scope.gate_head.modules()
               if isinstance(module, torch.nn.Linear)]
    assert linears
    for linear in linears:
        assert torch.all(linear.weight == 0.5)
        assert torch.all(linear.bias == 0)


def test_gate_init_cfg_applies_to_resized_weights(tmp_path):
    # A gate head of another class count loads its norm from the file, and
    # its init_cfg initialises the classifier that does not fit.
    source = MambaScope(gate_head=GATE, embed_dims=WIDTH, num_layers=LAYERS,
                        img_size=512)
    with torch.no_grad():
        source.gate_head.norm.weight.fill_(3.0)
    path = tmp_path / 'scope.pth'
    torch.save({'state_dict': source.state_dict()}, path)
    gate = dict(type='ScopeGateHead', num_classes=5, init_cfg=dict(
        type='Constant', layer='Linear', val=0.5, bias=0.0))
    scope = MambaScope(
        gate_head=gate, embed_dims=WIDTH, num_layers=LAYERS, img_size=512,
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))

    scope.init_weights()

    assert torch.all(scope.gate_head.fc.weight == 0.5)
    assert torch.all(scope.gate_head.norm.weight == 3.0)


def test_coarse_pos_embed_from_checkpoint(tmp_path):
    state = official_vim_state_dict()
    path = tmp_path / 'vim.pth'
    torch.save({'model': state}, path)
    _, scope = _pair(path)

    scope.init_weights()

    grid_part = torch.cat(
        [state['pos_embed'][:, :98], state['pos_embed'][:, 99:]], dim=1)
    expected = resample_pos_embed(grid_part, (14, 14), (16, 16))
    assert scope.coarse_pos_embed.shape == (1, 256, WIDTH)
    torch.testing.assert_close(scope.coarse_pos_embed.data, expected)
    assert scope.coarse_pos_embed.abs().max() < CLS_VALUE / 10


def test_corrupted_key_raises_like_vision_mamba(tmp_path):
    state = official_vim_state_dict()
    state['layers.0.mixer.D_bwd'] = state.pop('layers.0.mixer.D_b')
    path = tmp_path / 'bad.pth'
    torch.save({'model': state}, path)
    vim, scope = _pair(path)

    with pytest.raises(RuntimeError, match='D_bwd'):
        vim.init_weights()
    with pytest.raises(RuntimeError, match='D_bwd'):
        scope.init_weights()


def test_trained_scope_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    source = MambaScope(gate_head=GATE, embed_dims=WIDTH, num_layers=LAYERS,
                        img_size=(64, 96))
    path = tmp_path / 'segmentor.pth'
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in source.state_dict().items()}},
               path)
    target = MambaScope(
        gate_head=GATE, embed_dims=WIDTH, num_layers=LAYERS, img_size=(64, 96),
        init_cfg=dict(type='Pretrained', checkpoint=str(path),
                      prefix='backbone.'))

    target.init_weights()

    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
