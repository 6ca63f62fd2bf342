import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmscope.models import MambaScope, VisionMamba
from mmscope.models.backbones import refine_by_threshold

ARGS = dict(embed_dims=32, num_layers=4, state_size=4, img_size=64)
GATE = dict(type='ScopeGateHead', num_classes=10)


def _scope(**overrides):
    torch.manual_seed(0)
    settings = dict(ARGS, gate_head=GATE)
    settings.update(overrides)
    return MambaScope(**settings)


def _vim_with_same_weights(scope):
    vim = VisionMamba(**ARGS)
    missing, unexpected = vim.load_state_dict(scope.state_dict(), strict=False)
    assert not missing
    assert all(key.startswith(('coarse_pos_embed', 'reuse.', 'gate_head.'))
               for key in unexpected)
    return vim


def test_full_refinement_equals_vision_mamba():
    scope = _scope(threshold=1.0, refine_ratio=1.0).eval()
    with torch.no_grad():
        scope.reuse.fc2.weight.zero_()
        scope.reuse.fc2.bias.zero_()
    vim = _vim_with_same_weights(scope).eval()
    images = torch.randn(2, 3, 64, 96)

    with torch.no_grad():
        scope_maps = scope(images)
        vim_maps = vim(images)

    assert all(not record['stopped'] for record in scope.scope_info)
    for a, b in zip(scope_maps, vim_maps):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_zero_threshold_stops_every_image():
    scope = _scope(threshold=0.0).eval()
    images = torch.randn(2, 3, 64, 64)

    with torch.no_grad():
        output = scope.forward_scope(images, with_coarse_maps=True)

    assert scope.fine_stage_runs == 0
    assert not output.refined.any()
    for fused, coarse in zip(output.maps, output.coarse_maps):
        assert torch.equal(fused, coarse)
    for record in output.info:
        assert record['stopped']
        assert record['num_fine_tokens'] == 0


def test_coarse_maps_are_upsampled_coarse_outputs():
    scope = _scope(threshold=0.0, out_indices=(3, ), out_strides=(16, ))
    scope.eval()
    images = torch.randn(1, 3, 64, 64)

    with torch.no_grad():
        maps = scope(images)
        half = F.interpolate(images, size=(32, 32), mode='bilinear',
                             align_corners=False, antialias=True)
        tokens, grid = scope.patch_embed(half)
        tokens = tokens + scope.coarse_position_embedding(grid)
        _, final, _ = scope.forward_tokens(tokens)
        coarse_map = scope.tokens_to_map(final, grid)
        expected = F.interpolate(coarse_map, scale_factor=2, mode='nearest')

    torch.testing.assert_close(maps[0], expected)


def test_mixed_paths_match_single_images():
    scope = _scope(threshold=0.5, refine_ratio=0.5).eval()
    torch.manual_seed(3)
    images = torch.randn(4, 3, 64, 96)
    with torch.no_grad():
        confidences = scope.forward_scope(images).confidence
    # A threshold between the confidences sends the images on both paths.
    scope.threshold = float(confidences.median())
    with torch.no_grad():
        batch_output = scope.forward_scope(images)
        singles = [scope.forward_scope(images[i:i + 1]) for i in range(4)]

    assert batch_output.refined.any()
    assert not batch_output.refined.all()
    for index, single in enumerate(singles):
        assert bool(single.refined[0]) == bool(batch_output.refined[index])
        for batch_map, single_map in zip(batch_output.maps, single.maps):
            torch.testing.assert_close(
                batch_map[index:index + 1], single_map, rtol=1e-5, atol=1e-5)


def test_importance_score_is_ema_of_layer_outputs():
    scope = _scope(threshold=1.0, refine_ratio=0.25,
                   score_layers=(1, 2, 3), score_momentum=0.9).eval()
    recorded = {}

    def keep_pre_proj(index):
        def hook(module, args, output):
            if isinstance(output, tuple):
                recorded.setdefault(index, output[1].detach().clone())
        return hook

    for index, layer in enumerate(scope.layers):
        layer.mixer.register_forward_hook(keep_pre_proj(index))
    images = torch.randn(1, 3, 64, 64)

    with torch.no_grad():
        output = scope.forward_scope(images)

    expected = torch.zeros(1, 4)
    for index in (1, 2, 3):
        peak = F.softplus(recorded[index]).amax(dim=-1)
        expected = 0.9 * expected + 0.1 * peak
    torch.testing.assert_close(output.scores, expected)

    top = torch.sort(expected[0], descending=True, stable=True).indices[:1]
    assert output.info[0]['selected_cells'] == sorted(top.tolist())


def test_selection_ties_go_to_lower_index():
    scope = _scope()
    scores = torch.tensor([[0.5, 0.9, 0.5, 0.5, 0.1]])

    selected = scope.select_cells(scores, ratio=0.4)

    assert selected[0].tolist() == [True, True, False, False, False]


def test_selection_size_is_ceil_of_ratio():
    scope = _scope()
    scores = torch.rand(3, 35)
    for ratio in (0.01, 0.3, 0.8, 1.0):
        selected = scope.select_cells(scores, ratio)
        assert selected.sum(dim=1).tolist() == [math.ceil(ratio * 35)] * 3


def test_selection_size_exact_decimal():
    # 0.55 * 400 is 220.00000000000003 in binary floating point.
    scope = _scope()
    selected = scope.select_cells(torch.rand(1, 400), ratio=0.55)

    assert int(selected.sum()) == 220


def test_token_counts_recorded():
    scope = _scope(threshold=1.0, refine_ratio=0.5).eval()
    with torch.no_grad():
        output = scope.forward_scope(torch.randn(1, 3, 64, 96))

    record = output.info[0]
    cells = 2 * 3
    k = math.ceil(0.5 * cells)
    assert record['coarse_grid'] == [2, 3]
    assert record['num_coarse_tokens'] == cells
    assert record['num_fine_tokens'] == 4 * k + (cells - k)
    assert len(record['selected_cells']) == k
    assert record['backbone_gflops'] > 0


def test_training_refines_every_image():
    scope = _scope(threshold=0.0).train()
    output = scope.forward_scope(torch.randn(2, 3, 64, 64))
    assert output.refined.all()


def test_train_refine_ratio_used_in_training_only():
    scope = _scope(refine_ratio=0.25, threshold=1.0)
    scope.train_refine_ratio = 1.0
    scope.train()
    assert scope.active_refine_ratio == 1.0
    scope.eval()
    assert scope.active_refine_ratio == 0.25


def test_odd_input_cropped():
    scope = _scope(threshold=1.0).eval()
    with torch.no_grad():
        maps = scope(torch.randn(1, 3, 45, 70))
    for out, stride in zip(maps, (4, 8, 16, 32)):
        assert out.shape[-2:] == (math.ceil(45 / stride), math.ceil(70 / stride))


@pytest.mark.parametrize('name,value', [('threshold', -0.1),
                                        ('refine_ratio', 0.0),
                                        ('refine_ratio', 1.5),
                                        ('score_momentum', 1.0)])
def test_invalid_options(name, value):
    with pytest.raises(ValueError, match=name):
        _scope(**{name: value})


@pytest.mark.parametrize('value, error, message', [
    ((1, 9), ValueError, 'score_layers entry 9 is out of range'),
    ((0.5, ), TypeError, 'score_layers entries must be whole layer indices'),
    (1, TypeError, 'score_layers must be a list of layer indices, got 1'),
    ('abc', TypeError, "must be a list of layer indices, got 'abc'"),
])
def test_invalid_score_layers(value, error, message):
    with pytest.raises(error, match=message):
        _scope(score_layers=value)


@pytest.mark.parametrize('value', [0, -1, 1.5, True])
def test_invalid_reuse_mlp_ratio(value):
    with pytest.raises(ValueError, match='reuse_mlp_ratio must be a whole'):
        _scope(reuse_mlp_ratio=value)


def test_does_not_modify_input():
    scope = _scope(threshold=1.0).eval()
    images = torch.randn(1, 3, 64, 64)
    original = images.clone()
    with torch.no_grad():
        scope(images)
    assert torch.equal(images, original)


@pytest.mark.parametrize('budget,count', [(0.0, 0), (0.5, 2), (1.0, 4)])
def test_budget_refines_least_confident(budget, count):
    scope = _scope(refine_budget=budget, threshold=0.0).eval()
    confidence = torch.tensor([0.9, 0.2, 0.7, 0.4])

    refined = scope.decide_refinement(confidence)

    assert int(refined.sum()) == count
    least_confident = torch.argsort(confidence)[:count]
    assert sorted(refined.nonzero().flatten().tolist()) == sorted(
        least_confident.tolist())


def test_budget_count_exact_decimal():
    # 0.58 * 25 is 14.499999999999998 in binary floating point. The decimal
    # 14.5 rounds up to 15.
    scope = _scope(refine_budget=0.58).eval()
    refined = scope.decide_refinement(torch.linspace(0, 1, 25))

    assert int(refined.sum()) == 15


def test_budget_on_real_batch():
    scope = _scope(refine_budget=0.5).eval()
    with torch.no_grad():
        output = scope.forward_scope(torch.randn(4, 3, 64, 64))

    assert int(output.refined.sum()) == 2
    refined_conf = output.confidence[output.refined]
    stopped_conf = output.confidence[~output.refined]
    assert refined_conf.max() <= stopped_conf.min()


def test_invalid_budget():
    with pytest.raises(ValueError, match='refine_budget'):
        _scope(refine_budget=1.5)


def test_nan_confidence_refines():
    scope = _scope(threshold=0.5).eval()
    confidence = torch.tensor([0.9, float('nan'), 0.1, 0.5])

    refined = scope.decide_refinement(confidence)

    assert refined.tolist() == [False, True, True, False]


def test_nan_confidence_refines_in_budget():
    scope = _scope(refine_budget=0.25).eval()
    confidence = torch.tensor([0.9, float('nan'), 0.1, 0.5])

    refined = scope.decide_refinement(confidence)

    assert refined.tolist() == [False, True, False, False]


def test_non_numeric_threshold():
    with pytest.raises(TypeError, match="threshold must be a number, got 'abc'"):
        _scope(threshold='abc')


@pytest.mark.parametrize('threshold', [0.0, 1.0])
def test_bfloat16_weights_run(threshold):
    # threshold 0 stops every image at the gate, 1 refines every image.
    scope = _scope(threshold=threshold).eval().to(torch.bfloat16)
    with torch.no_grad():
        output = scope.forward_scope(
            torch.randn(2, 3, 64, 64, dtype=torch.bfloat16))

    assert bool(output.refined.all()) is (threshold == 1.0)
    for out in output.maps:
        assert out.dtype == torch.bfloat16
        assert torch.isfinite(out.float()).all()


@pytest.mark.parametrize('threshold', [0.0, 1.0])
def test_small_image_panels_enlarged(threshold):
    from mmscope.visualization import draw_scope_panels
    scope = _scope(threshold=threshold).eval()
    with torch.no_grad():
        record = scope.forward_scope(torch.randn(1, 3, 64, 64)).info[0]
    image = np.full((8, 12, 3), 128, dtype=np.uint8)

    panels = draw_scope_panels(image, record, (64, 64))

    # An 8-pixel side is enlarged 32 times to reach 256 pixels.
    assert panels.shape == (256, 768, 3)
    assert image.shape == (8, 12, 3)


def test_misspelt_argument_named():
    with pytest.raises(TypeError) as error:
        _scope(treshold=0.5)

    message = str(error.value)
    assert "MambaScope got unexpected arguments: 'treshold' (did you mean " \
        "'threshold'?)" in message
    assert 'refine_ratio' in message


def test_numpy_scalar_options_accepted():
    scope = _scope(threshold=np.float32(0.5), refine_ratio=np.float64(0.25),
                   refine_budget=np.float32(0.5), score_momentum=np.int64(0),
                   reuse_mlp_ratio=np.int64(2), embed_dims=np.int64(32),
                   num_layers=np.int32(4), img_size=np.int64(64))

    assert scope.embed_dims == 32
    assert type(scope.embed_dims) is int
    assert scope.pos_grid == (4, 4)
    for name in ('threshold', 'refine_ratio', 'refine_budget',
                 'score_momentum'):
        assert type(getattr(scope, name)) is float, name
    assert scope.threshold == float(np.float32(0.5))


def test_threshold_compared_exactly():
    # The float32 confidence rounds up to a threshold just above it; the
    # comparison must follow the float64 values, as Python's would.
    confidence = torch.tensor([0.9], dtype=torch.float32)
    below = float(np.nextafter(0.9, 0.0))
    above = float(np.nextafter(float(confidence), 1.0))

    assert refine_by_threshold(confidence, float(confidence)).tolist() == [
        False]
    assert refine_by_threshold(confidence, above).tolist() == [True]
    assert refine_by_threshold(confidence, below).tolist() == [
        float(confidence) < below]


@pytest.mark.parametrize('gate, message', [
    (dict(GATE, in_channels=16), 'gate_head.in_channels is 16, but the '
     'backbone gives tokens of 32 channels'),
    (dict(GATE, num_classes=2.5), 'gate_head.num_classes must be a whole'),
    (dict(GATE, num_classes=True), 'gate_head.num_classes must be a whole'),
    (dict(GATE, mode='softmax', num_classes=1), "at least 2 in 'softmax'"),
    (dict(GATE, mode='softmax', confidence='mean'),
     "applies to 'multilabel' mode only"),
])
def test_invalid_gate_settings(gate, message):
    with pytest.raises(ValueError, match=message):
        _scope(gate_head=gate)


def test_unknown_gate_type_named():
    with pytest.raises(ValueError, match="type='ScopeGateHead'"):
        _scope(gate_head=dict(type='ScopeGateHaed', num_classes=10))


def test_gate_type_defaults():
    scope = _scope(gate_head=dict(num_classes=10))

    assert type(scope.gate_head).__name__ == 'ScopeGateHead'


@pytest.mark.parametrize('images, message', [
    (torch.randn(1, 1, 64, 64), r'expects 3 channels \(in_channels\)'),
    (torch.randn(1, 64, 64, 3), r'Put channels first \(NCHW\)'),
    (torch.randn(1, 3, 0, 64), 'at least 1x1 pixels'),
    (torch.zeros(1, 3, 64, 64, dtype=torch.uint8),
     'expects floating-point images, got torch.uint8'),
    (torch.randn(1, 3, 64, 64, dtype=torch.float64),
     'has torch.float32 weights but got torch.float64 images'),
])
@pytest.mark.parametrize('backbone', ['MambaScope', 'VisionMamba'])
def test_invalid_images_named(images, message, backbone):
    model = _scope() if backbone == 'MambaScope' else VisionMamba(**ARGS)

    with pytest.raises(ValueError, match=message):
        model.eval()(images)


def test_autocast_images_accepted():
    scope = _scope(threshold=1.0).eval()

    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        maps = scope(torch.randn(1, 3, 64, 64, dtype=torch.bfloat16))

    assert all(torch.isfinite(out.float()).all() for out in maps)
