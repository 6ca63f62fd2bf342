"""Every shipped config builds at full size and runs loss and predict reduced."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope

from mmscope.utils import replace_sync_bn

from tests.reduced import DET, SEG

REPO_ROOT = Path(__file__).resolve().parents[2]
SEG_CONFIGS = sorted((REPO_ROOT / 'configs' / 'ade20k').glob('*.py'))
DET_CONFIGS = sorted((REPO_ROOT / 'configs' / 'coco').glob('*.py'))


def _load(path, overrides=None):
    cfg = Config.fromfile(str(path))
    if overrides:
        cfg.merge_from_dict(copy.deepcopy(overrides))
    return cfg


def _build_model(cfg):
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        from mmengine.registry import MODELS
        model_cfg = copy.deepcopy(cfg.model)
        # SyncBN needs a process group, which these tests do not start.
        replace_sync_bn(model_cfg)
        model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def _samples(cfg, split, count=2):
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        from mmengine.registry import DATASETS
        dataset = DATASETS.build(copy.deepcopy(cfg[f'{split}_dataloader'].dataset))
        return pseudo_collate([dataset[i] for i in range(count)])


def _run_loss_and_predict(cfg):
    torch.manual_seed(0)
    model = _build_model(cfg)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model.train()
        data = model.data_preprocessor(_samples(cfg, 'train'), training=True)
        losses = model(**data, mode='loss')
        total = sum(v.sum() for k, v in losses.items() if 'loss' in k and
                    isinstance(v, torch.Tensor))
        total.backward()

        model.eval()
        predictions = []
        val_samples = _samples(cfg, 'val')
        # Test-time batches hold one image, as in the val dataloaders,
        # because mmseg does not pad images of different sizes at test time.
        for inputs, data_sample in zip(val_samples['inputs'],
                                       val_samples['data_samples']):
            single = dict(inputs=[inputs], data_samples=[data_sample])
            with torch.no_grad():
                data = model.data_preprocessor(single, training=False)
                predictions.extend(model(**data, mode='predict'))
    return losses, total, predictions


@pytest.mark.parametrize('path', SEG_CONFIGS + DET_CONFIGS,
                         ids=lambda p: p.stem)
def test_full_size_config_builds(path):
    cfg = _load(path, {'model.backbone.init_cfg': None})
    model = _build_model(cfg)
    backbone = model.backbone
    assert backbone.num_layers == 24
    expected_width = {'t': 192, 's': 384, 'b': 768}
    suffix = path.stem.split('_')[2] if path.parent.name == 'ade20k' else \
        path.stem.split('_')[3]
    assert backbone.embed_dims == expected_width[suffix]


@pytest.mark.parametrize('path', SEG_CONFIGS, ids=lambda p: p.stem)
def test_seg_config_loss_and_predict(path):
    cfg = _load(path, SEG)

    losses, total, predictions = _run_loss_and_predict(cfg)

    assert 'decode.loss_ce' in losses
    assert 'aux.loss_ce' in losses
    assert torch.isfinite(total)
    assert len(predictions) == 2
    for sample in predictions:
        height, width = sample.ori_shape
        assert sample.pred_sem_seg.data.shape == (1, height, width)


@pytest.mark.parametrize('path', DET_CONFIGS, ids=lambda p: p.stem)
def test_det_config_loss_and_predict(path):
    cfg = _load(path, DET)

    losses, total, predictions = _run_loss_and_predict(cfg)

    for key in ('loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'):
        assert key in losses
    assert torch.isfinite(total)
    assert len(predictions) == 2
    for sample in predictions:
        assert 'bboxes' in sample.pred_instances
        assert 'masks' in sample.pred_instances
