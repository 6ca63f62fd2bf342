import math
import re

import pytest
import torch

from mmscope.models import VisionMamba

SMALL = dict(embed_dims=32, num_layers=4, state_size=4, img_size=64)


def _small_backbone(**overrides):
    torch.manual_seed(0)
    settings = dict(SMALL)
    settings.update(overrides)
    return VisionMamba(**settings)


@pytest.mark.parametrize('batch', [1, 2])
@pytest.mark.parametrize('shape', [(64, 64), (65, 97), (31, 200), (320, 192)])
def test_output_shapes(shape, batch):
    backbone = _small_backbone().eval()
    height, width = shape

    with torch.no_grad():
        outs = backbone(torch.randn(batch, 3, height, width))

    assert isinstance(outs, tuple)
    assert len(outs) == 4
    for out, stride in zip(outs, (4, 8, 16, 32)):
        expected = (batch, 32, math.ceil(height / stride),
                    math.ceil(width / stride))
        assert tuple(out.shape) == expected, f'stride {stride}'


def test_arch_presets():
    for arch, width in (('tiny', 192), ('small', 384), ('base', 768)):
        backbone = VisionMamba(arch=arch, num_layers=1)
        assert backbone.embed_dims == width
        assert backbone.layers[0].mixer.inner_dims == 2 * width
        assert backbone.layers[0].mixer.state_size == 16
        assert backbone.patch_size == 16


def test_arch_defaults_depth():
    backbone = VisionMamba(arch='tiny')
    assert len(backbone.layers) == 24
    assert backbone.out_indices == (5, 11, 17, 23)


def test_explicit_overrides():
    backbone = VisionMamba(arch='small', embed_dims=48, num_layers=3,
                           state_size=8, expand=1, patch_size=8, img_size=64)
    assert backbone.embed_dims == 48
    assert len(backbone.layers) == 3
    assert backbone.layers[0].mixer.A_log.shape == (48, 8)
    assert backbone.pos_embed.shape == (1, 64, 48)


def test_invalid_arch():
    with pytest.raises(ValueError, match="'huge'"):
        VisionMamba(arch='huge')


@pytest.mark.parametrize('img_size', [0, 8, (64, 15)])
def test_img_size_below_one_patch(img_size):
    with pytest.raises(ValueError, match='smaller than one patch of 16'):
        VisionMamba(embed_dims=32, num_layers=2, img_size=img_size)


def test_invalid_out_index():
    with pytest.raises(ValueError, match='out_indices entry 7'):
        VisionMamba(num_layers=4, out_indices=(1, 7))


def test_out_strides_length_mismatch():
    with pytest.raises(ValueError, match='out_strides'):
        VisionMamba(num_layers=4, out_indices=(1, 3), out_strides=(4, 8, 16))


@pytest.mark.parametrize('stride', [12, 0, -16])
def test_invalid_out_stride(stride):
    with pytest.raises(ValueError, match=f'Invalid output stride {stride}'):
        VisionMamba(num_layers=4, out_indices=(3, ), out_strides=(stride, ))


def test_pretrained_argument_warns():
    with pytest.warns(UserWarning, match='pretrained is deprecated'):
        VisionMamba(num_layers=4, pretrained='vim_t.pth')


def test_negative_out_index_means_last():
    backbone = _small_backbone(out_indices=-1, out_strides=(16, ))
    assert backbone.out_indices == (3, )


def test_rejects_non_image_input():
    backbone = _small_backbone()
    with pytest.raises(ValueError, match='batch, channels, height, width'):
        backbone(torch.randn(3, 64, 64))


def test_pos_embed_resampled_for_other_grid():
    backbone = _small_backbone().eval()
    stored = backbone.pos_embed.detach().clone()

    same = backbone.position_embedding((4, 4))
    other = backbone.position_embedding((3, 7))

    assert torch.equal(same, stored)
    assert other.shape == (1, 21, 32)
    assert torch.equal(backbone.pos_embed.detach(), stored)


def test_pos_embed_cache_invalidated_by_update():
    backbone = _small_backbone().eval()
    with torch.no_grad():
        first = backbone.position_embedding((5, 6)).clone()
        backbone.pos_embed.add_(1.0)
        second = backbone.position_embedding((5, 6))

    torch.testing.assert_close(second, first + 1.0)


def test_pos_embed_cache_data_swap():
    # EMA hooks and fused optimizers change the weights without bumping the
    # parameter's version counter.
    backbone = _small_backbone().eval()
    with torch.no_grad():
        first = backbone.position_embedding((5, 6)).clone()
        version = backbone.pos_embed._version
        backbone.pos_embed.data = backbone.pos_embed.data + 1.0
        assert backbone.pos_embed._version == version
        second = backbone.position_embedding((5, 6))

    torch.testing.assert_close(second, first + 1.0)


def test_with_cp_matches_plain():
    plain = _small_backbone()
    checkpointed = _small_backbone(with_cp=True)
    checkpointed.load_state_dict(plain.state_dict())
    plain.train()
    checkpointed.train()
    images = torch.randn(2, 3, 64, 48)

    out_plain = plain(images)
    out_cp = checkpointed(images)
    sum(o.sum() for o in out_plain).backward()
    sum(o.sum() for o in out_cp).backward()

    for a, b in zip(out_plain, out_cp):
        torch.testing.assert_close(a, b)
    for (name, p), (_, q) in zip(plain.named_parameters(),
                                 checkpointed.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_backward_reaches_every_parameter():
    backbone = _small_backbone().train()
    images = torch.randn(2, 3, 64, 64)

    outs = backbone(images)
    sum(out.square().mean() for out in outs).backward()

    for name, param in backbone.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name


def test_does_not_modify_input():
    backbone = _small_backbone().eval()
    images = torch.randn(1, 3, 40, 50)
    original = images.clone()

    backbone(images)

    assert torch.equal(images, original)


def test_norm_cfg_used_for_upsampling():
    backbone = _small_backbone(norm_cfg=dict(type='GN', num_groups=4))
    norms = [m for m in backbone.multi_scale.modules()
             if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 1


def test_default_norm_is_batch_norm():
    backbone = _small_backbone()
    kinds = {type(m).__name__ for m in backbone.multi_scale.modules()}
    assert 'BatchNorm2d' in kinds
    assert 'SyncBatchNorm' not in kinds


def test_final_norm_applied_to_last_output():
    backbone = _small_backbone(out_indices=(3, ), out_strides=(16, )).eval()
    tokens, _ = backbone.embed(torch.randn(1, 3, 64, 64))

    outs, final, _ = backbone.forward_tokens(tokens)

    torch.testing.assert_close(outs[0], final)


def test_pre_proj_collected_for_requested_layers():
    backbone = _small_backbone().eval()
    tokens, _ = backbone.embed(torch.randn(1, 3, 64, 64))

    _, _, pre_projs = backbone.forward_tokens(tokens, pre_proj_layers=(2, 3))

    assert sorted(pre_projs) == [2, 3]
    assert pre_projs[2].shape == (1, 16, 64)


@pytest.mark.parametrize('settings, error, message', [
    (dict(embed_dims=True), ValueError, 'embed_dims must be a positive int'),
    (dict(num_layers=4.0), ValueError, 'num_layers must be a positive int'),
    (dict(img_size=(64.5, 64)), TypeError, 'pair of ints, got (64.5, 64)'),
    (dict(img_size=True), TypeError, 'img_size must be an int or'),
])
def test_invalid_sizes_named(settings, error, message):
    with pytest.raises(error, match=re.escape(message)):
        VisionMamba(**dict(dict(num_layers=4), **settings))
