"""Checks that the heads of a config fit its backbone and its data set."""
import re
import shutil
import subprocess
import sys

import cv2
import pytest
from mmengine.config import Config

from mmscope.apis import init_scope_model
from mmscope.utils import check_model_settings
from tests.reduced import ADE_ROOT, DET, REPO_ROOT, RUNTIME, SEG, cfg_options
from tests.tool_runs import tool_error

SEG_CONFIG = 'configs/ade20k/upernet_mambascope_t.py'
DET_CONFIG = 'configs/coco/mask_rcnn_vim_t_fpn_1x_coco.py'
CUSTOM_CLASSES = ('sky', 'road', 'tree', 'other')


def _config(path, overrides):
    cfg = Config.fromfile(str(REPO_ROOT / path))
    cfg.merge_from_dict(dict(overrides))
    return cfg


@pytest.mark.parametrize(
    'path', sorted(str(path.relative_to(REPO_ROOT))
                   for path in (REPO_ROOT / 'configs').glob('*/*.py')
                   if path.parent.name != '_base_'))
def test_shipped_configs_pass(path):
    check_model_settings(Config.fromfile(str(REPO_ROOT / path)))


def test_reduced_configs_pass():
    check_model_settings(_config(SEG_CONFIG, SEG))
    check_model_settings(_config(DET_CONFIG, DET))


def test_decoder_width_named():
    cfg = _config(SEG_CONFIG, dict(SEG, **{
        'model.decode_head.in_channels': [192] * 4}))

    with pytest.raises(ValueError) as error:
        check_model_settings(cfg)

    message = str(error.value)
    assert 'model.decode_head.in_channels is [192, 192, 192, 192]' in message
    assert 'maps of 32 channels' in message
    assert 'Set model.decode_head.in_channels=[32, 32, 32, 32].' in message
    assert 'auxiliary_head' not in message


def test_arch_width_used_without_embed_dims():
    cfg = _config(SEG_CONFIG, {'model.backbone.arch': 'small'})

    with pytest.raises(ValueError) as error:
        check_model_settings(cfg)

    message = str(error.value)
    assert 'maps of 384 channels' in message
    assert 'Set model.auxiliary_head.in_channels=384.' in message


def test_neck_width_named():
    cfg = _config(DET_CONFIG, dict(DET, **{'model.backbone.embed_dims': 48}))

    with pytest.raises(ValueError,
                       match=r'Set model.neck.in_channels=\[48, 48, 48, 48\]'):
        check_model_settings(cfg)


def test_gate_classes_follow_metainfo():
    metainfo = {'classes': CUSTOM_CLASSES}
    cfg = _config(SEG_CONFIG, dict(SEG, **{
        'train_dataloader.dataset.metainfo': metainfo,
        'model.decode_head.num_classes': 4,
        'model.auxiliary_head.num_classes': 4}))

    with pytest.raises(ValueError) as error:
        check_model_settings(cfg, ('train', ))

    message = str(error.value)
    assert 'model.backbone.gate_head.num_classes is 150' in message
    assert 'data set has 4 classes' in message
    assert 'train_dataloader.dataset.metainfo.classes' in message
    assert 'Set model.backbone.gate_head.num_classes=4.' in message
    assert 'decode_head' not in message


def test_detector_classes_follow_dataset_type():
    cfg = _config(DET_CONFIG, dict(DET, **{
        'model.roi_head.bbox_head.num_classes': 10}))

    with pytest.raises(ValueError) as error:
        check_model_settings(cfg, ('test', ))

    message = str(error.value)
    assert 'model.roi_head.bbox_head.num_classes is 10' in message
    assert ('80 classes (the classes of CocoDataset in '
            'test_dataloader.dataset)') in message
    assert 'mask_head' not in message


def test_concatenated_datasets_counted():
    cfg = _config(SEG_CONFIG, SEG)
    inner = dict(cfg.train_dataloader.dataset,
                 metainfo={'classes': CUSTOM_CLASSES})
    cfg.train_dataloader.dataset = dict(
        type='RepeatDataset', times=2,
        dataset=dict(type='ConcatDataset', datasets=[inner, inner]))

    with pytest.raises(ValueError) as error:
        check_model_settings(cfg, ('train', ))

    message = str(error.value)
    assert 'data set has 4 classes' in message
    assert ('train_dataloader.dataset.dataset.datasets.0.metainfo.classes'
            in message)


def test_class_types_checked():
    # Pure-Python configs give types as classes.
    from mmseg.models.segmentors import EncoderDecoder

    from mmscope.apis import task_of
    from mmscope.models import VisionMamba
    cfg = _config('configs/ade20k/upernet_vim_t.py', SEG)
    cfg.model.type = EncoderDecoder
    cfg.model.backbone.type = VisionMamba
    cfg.model.decode_head.in_channels = [64] * 4
    cfg.default_scope = None

    with pytest.raises(ValueError, match='decode_head.in_channels is'):
        check_model_settings(cfg)
    assert task_of(cfg) == 'seg'


def test_other_backbones_not_checked():
    # STDC's detail head predicts 2 boundary classes on a 19-class data set.
    cfg = _config(SEG_CONFIG, SEG)
    cfg.model.backbone = dict(type='STDCContextPathNet')
    cfg.model.auxiliary_head = dict(type='STDCHead', num_classes=2,
                                    in_channels=256)

    check_model_settings(cfg, ('train', ))


def test_neck_takes_backbone_maps():
    # With a neck, the heads take the neck's maps, not the backbone's.
    cfg = _config(SEG_CONFIG, dict(SEG, **{
        'model.neck': dict(type='MultiLevelNeck', in_channels=[32] * 4,
                           out_channels=48, scales=[4, 2, 1, 0.5]),
        'model.decode_head.in_channels': [48] * 4,
        'model.auxiliary_head.in_channels': 48}))
    check_model_settings(cfg)

    det = _config(DET_CONFIG, DET)
    det.model.neck = [dict(det.model.neck),
                      dict(type='BFP', in_channels=256, num_levels=5)]
    check_model_settings(det)

    det.model.neck[0]['in_channels'] = [48] * 4
    with pytest.raises(ValueError, match=r'model.neck.0.in_channels is'):
        check_model_settings(det)


def test_classes_from_file_not_counted(tmp_path):
    classes = tmp_path / 'classes.txt'
    classes.write_text('sky\nroad\ntree\nother\n')
    cfg = _config(SEG_CONFIG, dict(SEG, **{
        'train_dataloader.dataset.metainfo': {'classes': str(classes)},
        'model.decode_head.num_classes': 4,
        'model.auxiliary_head.num_classes': 4,
        'model.backbone.gate_head.num_classes': 4}))

    check_model_settings(cfg, ('train', ))


def test_stages_choose_the_dataloader():
    cfg = _config(SEG_CONFIG, dict(SEG, **{
        'test_dataloader.dataset.metainfo': {'classes': CUSTOM_CLASSES},
        'model.decode_head.num_classes': 4,
        'model.auxiliary_head.num_classes': 4,
        'model.backbone.gate_head.num_classes': 4}))

    check_model_settings(cfg, ('test', ))
    check_model_settings(cfg)
    with pytest.raises(ValueError, match='150 classes'):
        check_model_settings(cfg, ('train', ))


def test_train_tool_names_width_before_runner(tmp_path):
    overrides = dict(SEG, **{'model.decode_head.in_channels': [192] * 4})
    stderr = tool_error('tools/train.py', SEG_CONFIG, '--work-dir',
                        str(tmp_path / 'work'), '--cfg-options',
                        *cfg_options(overrides))

    assert 'Invalid setting: model.decode_head.in_channels' in stderr
    assert not (tmp_path / 'work').exists()


def test_init_scope_model_names_classes():
    cfg = _config(SEG_CONFIG, dict(SEG, **{
        'model.auxiliary_head.num_classes': 10}))

    with pytest.raises(ValueError,
                       match='model.auxiliary_head.num_classes is 10'):
        init_scope_model(cfg, None, 'cpu')


OWN_CONFIG = """
_base_ = '{base}'
metainfo = dict(classes={classes}, palette=[[0, 0, 0]] * 4)
model = dict(
    backbone=dict(gate_head=dict(num_classes=4)),
    decode_head=dict(num_classes=4),
    auxiliary_head=dict(num_classes=4))
train_dataloader = dict(dataset=dict(
    type='BaseSegDataset', data_root='{root}', metainfo=metainfo,
    reduce_zero_label=False, img_suffix='.jpg', seg_map_suffix='.png',
    data_prefix=dict(img_path='img/train', seg_map_path='ann/train')))
val_dataloader = dict(dataset=dict(
    type='BaseSegDataset', data_root='{root}', metainfo=metainfo,
    reduce_zero_label=False, img_suffix='.jpg', seg_map_suffix='.png',
    data_prefix=dict(img_path='img/val', seg_map_path='ann/val')))
test_dataloader = val_dataloader
"""


def _own_data_set(root):
    """Copy the shipped ADE20K images with their labels folded to 4 classes."""
    for split, source in (('train', 'training'), ('val', 'validation')):
        (root / 'img' / split).mkdir(parents=True)
        (root / 'ann' / split).mkdir(parents=True)
        images = sorted((REPO_ROOT / ADE_ROOT / 'images' / source).glob(
            '*.jpg'))
        for image in images:
            shutil.copy(image, root / 'img' / split / image.name)
            label = cv2.imread(
                str(REPO_ROOT / ADE_ROOT / 'annotations' / source /
                    f'{image.stem}.png'), cv2.IMREAD_UNCHANGED)
            cv2.imwrite(str(root / 'ann' / split / f'{image.stem}.png'),
                        label % 4)


def test_own_classes_train(tmp_path):
    _own_data_set(tmp_path / 'data')
    config = tmp_path / 'own.py'
    config.write_text(OWN_CONFIG.format(
        base=REPO_ROOT / SEG_CONFIG, classes=CUSTOM_CLASSES,
        root=tmp_path / 'data'))
    overrides = {key: value for key, value in dict(SEG, **RUNTIME).items()
                 if not key.endswith('.data_root')}
    overrides.update({'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2})

    result = subprocess.run(
        [sys.executable, 'tools/train.py', str(config), '--work-dir',
         str(tmp_path / 'work'), '--cfg-options', *cfg_options(overrides)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    # The per-class table of IoUMetric names each class of the config.
    for name in CUSTOM_CLASSES:
        assert re.search(rf'\|\s+{name}\s+\|', output), name
    assert 'mIoU:' in output
