"""Training wrappers of MambaScope built from the shipped configs."""
import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.runner import set_random_seed

from mmscope.evaluation import ScopeMetric
from mmscope.visualization import describe_record, draw_scope_panels

from tests.reduced import DET, SEG
from tests.test_configs.test_config_forward import (REPO_ROOT, _build_model,
                                                    _load, _samples)

SEG_CONFIG = REPO_ROOT / 'configs/ade20k/upernet_mambascope_t.py'
DET_CONFIG = REPO_ROOT / 'configs/coco/mask_rcnn_mambascope_t_fpn_1x_coco.py'


def _train_step(cfg):
    # Seeds the data pipeline's random crops and flips as well.
    set_random_seed(0)
    model = _build_model(cfg)
    model.train()
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        data = model.data_preprocessor(_samples(cfg, 'train'), training=True)
        losses = model(**data, mode='loss')
    total = sum(value.sum() for key, value in losses.items()
                if 'loss' in key and isinstance(value, torch.Tensor))
    total.backward()
    return model, losses, total


def _assert_backbone_gradients(backbone):
    names = [name for name, _ in backbone.named_parameters()]
    for prefix in ('gate_head.', 'reuse.', 'coarse_pos_embed', 'pos_embed',
                   'patch_embed.'):
        assert any(name.startswith(prefix) for name in names), prefix
    for name, param in backbone.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    for index, layer in enumerate(backbone.layers):
        grads = [p.grad.abs().sum() for p in layer.parameters()]
        assert sum(grads) > 0, f'layer {index}'


def test_seg_wrapper_losses_and_gradients():
    cfg = _load(SEG_CONFIG, dict(SEG, **{'model.distill_loss_weight': 0.5}))

    model, losses, total = _train_step(cfg)

    for key in ('decode.loss_ce', 'aux.loss_ce', 'coarse_decode.loss_ce',
                'coarse_aux.loss_ce', 'loss_gate', 'loss_distill'):
        assert key in losses, key
    assert torch.isfinite(total)
    _assert_backbone_gradients(model.backbone)


def test_seg_coarse_losses_weighted():
    weights = {}
    for weight in (1.0, 0.25):
        cfg = _load(SEG_CONFIG, dict(SEG, **{
            'model.coarse_loss_weight': weight,
            'model.backbone.drop_path_rate': 0.0,
            'model.decode_head.dropout_ratio': 0.0,
            'model.auxiliary_head.dropout_ratio': 0.0,
        }))
        _, losses, _ = _train_step(cfg)
        weights[weight] = losses['coarse_decode.loss_ce'].item()

    assert abs(weights[0.25] - 0.25 * weights[1.0]) < 1e-4 * weights[1.0]


def test_det_wrapper_losses_and_gradients():
    cfg = _load(DET_CONFIG, DET)

    model, losses, total = _train_step(cfg)

    for key in ('loss_rpn_cls', 'loss_cls', 'loss_mask', 'coarse_loss_rpn_cls',
                'coarse_loss_cls', 'coarse_loss_mask', 'loss_gate'):
        assert key in losses, key
    assert torch.isfinite(total)
    _assert_backbone_gradients(model.backbone)


def _predict_one_val_image(overrides):
    """Predict the first validation image; return inputs and results."""
    cfg = _load(SEG_CONFIG, dict(SEG, **overrides))
    model = _build_model(cfg).eval()
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        batch = _samples(cfg, 'val', count=1)
        data = model.data_preprocessor(batch, training=False)
        with torch.no_grad():
            results = model(**data, mode='predict')
    return model, data['inputs'], results


def test_seg_predict_carries_scope_record():
    _, _, results = _predict_one_val_image({'model.backbone.threshold': 1.0})

    record = results[0].metainfo['scope']
    assert record['stopped'] is False
    assert record['num_fine_tokens'] > record['num_coarse_tokens']


def test_slide_predict_merges_windows():
    crop, stride = 32, 24
    model, inputs, results = _predict_one_val_image({
        'model.backbone.threshold': 1.0,
        'model.test_cfg': dict(mode='slide', crop_size=(crop, crop),
                               stride=(stride, stride)),
    })

    height, width = inputs.shape[-2:]
    windows = ((max(height - crop + stride - 1, 0) // stride + 1) *
               (max(width - crop + stride - 1, 0) // stride + 1))
    record = results[0].metainfo['scope']
    assert windows > 1
    assert record['num_windows'] == windows
    assert record['refined_windows'] == windows
    assert record['stopped'] is False

    window_gflops = model.backbone.count_macs((crop, crop)) / 1e9
    assert abs(record['vim_gflops'] - windows * window_gflops) < 1e-9
    # With threshold 1.0 every window refines the same number of cells, so
    # each costs what the backbone costs on one window-sized crop.
    with torch.no_grad():
        single = model.backbone.forward_scope(inputs[..., :crop, :crop])
    assert record['backbone_gflops'] == pytest.approx(
        windows * single.info[0]['backbone_gflops'])

    assert describe_record(record) == (
        f"{windows} sliding windows, {windows} refined; backbone "
        f"{record['backbone_gflops']:.4g} GFLOPs (Vim "
        f"{record['vim_gflops']:.4g})")
    image = np.zeros((height, width, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=f'merges {windows} sliding windows'):
        draw_scope_panels(image, record, (height, width))

    # Outside predict, inference keeps no records behind.
    with torch.no_grad():
        model.inference(inputs, [results[0].metainfo])
    assert model._call_records is None


def test_scope_metric_means_and_empty():
    metric = ScopeMetric()
    records = [
        dict(stopped=True, backbone_gflops=1.0, vim_gflops=4.0),
        dict(stopped=False, backbone_gflops=5.0, vim_gflops=4.0),
    ]
    metric.process({}, [dict(scope=record) for record in records])

    assert metric.compute_metrics(metric.results) == dict(
        refine_share=0.5, backbone_gflops=3.0, vim_gflops=4.0,
        gflops_ratio=0.75)
    assert metric.compute_metrics([]) == {}


def test_seg_wrapper_rejects_head_with_own_loss():
    from mmseg.models.decode_heads import FCNHead
    from mmseg.registry import MODELS

    class OwnLossHead(FCNHead):
        """A decode head that computes its loss its own way."""

        def loss(self, inputs, batch_data_samples, train_cfg):
            return super().loss(inputs, batch_data_samples, train_cfg)

    MODELS.register_module('OwnLossHead', module=OwnLossHead, force=True)
    cfg = _load(SEG_CONFIG, SEG)
    cfg.model.decode_head = dict(
        type='OwnLossHead', in_channels=cfg.model.decode_head.in_channels[-1],
        channels=8, num_convs=1, num_classes=150)

    with pytest.raises(TypeError, match='OwnLossHead has a loss of its own'):
        _build_model(cfg)


def test_det_wrapper_checks_feature_calls(monkeypatch):
    from mmdet.models.detectors import TwoStageDetector
    cfg = _load(DET_CONFIG, DET)
    model = _build_model(cfg).train()
    standard_loss = TwoStageDetector.loss

    def loss_with_two_feature_calls(self, batch_inputs, batch_data_samples):
        self.extract_feat(batch_inputs)
        return standard_loss(self, batch_inputs, batch_data_samples)

    monkeypatch.setattr(TwoStageDetector, 'loss', loss_with_two_feature_calls)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        data = model.data_preprocessor(_samples(cfg, 'train'), training=True)
        with pytest.raises(RuntimeError, match='extract_feat once per loss'):
            model(**data, mode='loss')
    assert model._queued_maps == []


def test_wrapper_losses_run_backbone_hooks():
    # The wrappers call the backbone module, so its forward hooks run.
    for config, overrides in ((SEG_CONFIG, SEG), (DET_CONFIG, DET)):
        cfg = _load(config, overrides)
        model = _build_model(cfg).train()
        calls = []
        model.backbone.register_forward_hook(
            lambda module, args, output: calls.append(type(output).__name__))
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            data = model.data_preprocessor(_samples(cfg, 'train'),
                                           training=True)
            model(**data, mode='loss')

        assert calls == ['ScopeOutput'], config
