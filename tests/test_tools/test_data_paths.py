"""Missing data sets and annotation files are named before the runner runs."""
import torch
from mmengine.config import Config

from mmscope.utils import missing_data_paths
from mmscope.utils.data_paths import empty_image_folders
from tests.reduced import ADE_ROOT
from tests.test_tools.test_train_tool import REPO_ROOT
from tests.tool_runs import tool_error


def _config(**entries):
    return Config(dict(entries))


def test_existing_data_passes():
    cfg = _config(train_dataloader=dict(dataset=dict(data_root=ADE_ROOT)))

    assert missing_data_paths(cfg, ('train', )) == []


def test_wrappers_evaluators_and_urls(tmp_path):
    absent = str(tmp_path / 'absent')
    cfg = _config(
        train_dataloader=dict(dataset=dict(
            type='RepeatDataset',
            dataset=dict(data_root=absent, ann_file='train.json'))),
        val_dataloader=dict(dataset=dict(
            type='ConcatDataset',
            datasets=[dict(data_root=ADE_ROOT),
                      dict(data_root='s3://bucket/data')])),
        val_evaluator=[dict(type='CocoMetric', ann_file=absent + '.json'),
                       dict(type='ScopeMetric')],
        test_dataloader=dict(dataset=dict(data_root=absent)))

    missing = missing_data_paths(cfg, ('train', 'val'))

    assert missing == [
        f'train_dataloader.dataset.dataset.data_root: {absent}',
        f'train_dataloader.dataset.dataset.ann_file: {absent}/train.json',
        f'val_evaluator.0.ann_file: {absent}.json',
    ]


def test_data_prefix_below_data_root():
    cfg = _config(test_dataloader=dict(dataset=dict(
        data_root=ADE_ROOT,
        data_prefix=dict(img_path='images/nope',
                         seg_map_path='annotations/validation'))))

    assert missing_data_paths(cfg, ('test', )) == [
        f'test_dataloader.dataset.data_prefix.img_path: {ADE_ROOT}/images/nope'
    ]


def test_image_folder_without_suffix(tmp_path):
    (tmp_path / 'img' / 'train').mkdir(parents=True)
    (tmp_path / 'img' / 'train' / 'a.jpg').write_bytes(b'')
    (tmp_path / 'img' / 'val').mkdir(parents=True)
    cfg = _config(
        default_scope='mmseg',
        train_dataloader=dict(dataset=dict(
            type='RepeatDataset', times=2, dataset=dict(
                type='BaseSegDataset', data_root=str(tmp_path),
                img_suffix='.png', data_prefix=dict(img_path='img/train')))),
        val_dataloader=dict(dataset=dict(
            type='ADE20KDataset', data_root=str(tmp_path),
            data_prefix=dict(img_path='img/val'))))

    empty = empty_image_folders(cfg, ('train', 'val'))

    assert empty == [
        'train_dataloader.dataset.dataset.data_prefix.img_path: '
        f"{tmp_path}/img/train has no file ending in '.png' "
        '(train_dataloader.dataset.dataset.img_suffix)',
        f"val_dataloader.dataset.data_prefix.img_path: {tmp_path}/img/val "
        "has no file ending in '.jpg' (val_dataloader.dataset.img_suffix)",
    ]


def test_image_suffix_of_class_type(tmp_path):
    from mmseg.datasets import ADE20KDataset
    (tmp_path / 'img').mkdir()
    (tmp_path / 'img' / 'a.png').write_bytes(b'')
    # A pure-Python config gives the dataset type as a class.
    cfg = _config(val_dataloader=dict(dataset=dict(
        type=ADE20KDataset, data_root=str(tmp_path),
        data_prefix=dict(img_path='img'))))

    assert empty_image_folders(cfg, ('val', )) == [
        f"val_dataloader.dataset.data_prefix.img_path: {tmp_path}/img has no "
        "file ending in '.jpg' (val_dataloader.dataset.img_suffix)"
    ]


def test_shipped_images_found():
    cfg = Config.fromfile(
        str(REPO_ROOT / 'configs/ade20k/upernet_vim_t.py'))
    for stage in ('train', 'val', 'test'):
        cfg[f'{stage}_dataloader'].dataset.data_root = ADE_ROOT

    assert empty_image_folders(cfg, ('train', 'val', 'test')) == []


def test_train_tool_names_image_suffix(tmp_path):
    stderr = tool_error('tools/train.py', 'configs/ade20k/upernet_vim_t.py',
                        '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                        f'train_dataloader.dataset.data_root={ADE_ROOT}',
                        f'val_dataloader.dataset.data_root={ADE_ROOT}',
                        'train_dataloader.dataset.img_suffix=.png')

    assert 'No images found:' in stderr
    assert "has no file ending in '.png'" in stderr


def test_tools_name_missing_data(tmp_path):
    checkpoint = tmp_path / 'model.pth'
    torch.save({'state_dict': {}}, checkpoint)

    train = tool_error('tools/train.py',
                       'configs/ade20k/upernet_mambascope_s.py',
                       '--work-dir', str(tmp_path / 'work'))
    test = tool_error('tools/test.py',
                      'configs/coco/mask_rcnn_vim_t_fpn_1x_coco.py',
                      str(checkpoint), '--work-dir', str(tmp_path / 'work'))

    assert ('train_dataloader.dataset.data_root: '
            'data/ade/ADEChallengeData2016') in train
    assert ('test_evaluator.ann_file: '
            'data/coco/annotations/instances_val2017.json') in test
    assert 'data/coco_mini' in test
