"""Misspelt data, transform and metric settings are named before the runner."""
import pytest
import torch
from mmcv.transforms import RandomResize
from mmengine.config import Config
from mmseg.datasets import ADE20KDataset
from mmseg.evaluation import IoUMetric

from mmscope.utils.data_arguments import (accepted_arguments,
                                          data_argument_problems)
from tests.test_tools.test_train_tool import REPO_ROOT
from tests.tool_runs import tool_error

SHIPPED_CONFIGS = sorted(
    str(path.relative_to(REPO_ROOT))
    for folder in ('ade20k', 'coco')
    for path in (REPO_ROOT / 'configs' / folder).glob('*.py'))


@pytest.mark.parametrize('path', SHIPPED_CONFIGS)
def test_shipped_configs_pass(path):
    cfg = Config.fromfile(str(REPO_ROOT / path))

    assert data_argument_problems(cfg, ('train', 'val', 'test')) == []


def test_misspelt_names_in_each_part():
    cfg = Config.fromfile(str(REPO_ROOT / 'configs/ade20k/upernet_vim_t.py'))
    cfg.merge_from_dict({
        'train_dataloader.dataset.data_prefx': 'images',
        'train_dataloader.dataset.pipeline.1.reduce_zero_labl': True,
        'val_evaluator.iou_metric': ['mIoU'],
        'test_dataloader.dataset.type': 'ADE20KDatset',
    })

    problems = data_argument_problems(cfg, ('train', 'val', 'test'))

    assert problems == [
        "train_dataloader.dataset.data_prefx: ADE20KDataset takes no "
        "argument 'data_prefx' (did you mean 'data_prefix'?)",
        'train_dataloader.dataset.pipeline.1.reduce_zero_labl: '
        "LoadAnnotations takes no argument 'reduce_zero_labl' (did you mean "
        "'reduce_zero_label'?)",
        "val_evaluator.iou_metric: IoUMetric takes no argument 'iou_metric' "
        "(did you mean 'iou_metrics'?)",
        "test_dataloader.dataset.type: 'ADE20KDatset' is not a registered "
        "dataset type (did you mean 'ADE20KDataset'?)",
    ]


def test_wrapped_datasets_and_nested_transforms():
    cfg = Config(dict(
        default_scope='mmdet',
        train_dataloader=dict(dataset=dict(
            type='RepeatDataset', times=2, tims=3,
            dataset=dict(type='CocoDataset', ann_fle='a.json'))),
        test_dataloader=dict(dataset=dict(
            type='CocoDataset',
            pipeline=[dict(type='TestTimeAug', transforms=[
                [dict(type='mmdet.Resize', scale=(64, 64), keep_ration=True)],
                [dict(type='RandomFlip', prob=1.0)],
            ])])),
        test_evaluator=[dict(type='CocoMetric', metrc='bbox')]))

    problems = data_argument_problems(cfg, ('train', 'test'))

    assert problems == [
        "train_dataloader.dataset.dataset.ann_fle: CocoDataset takes no "
        "argument 'ann_fle' (did you mean 'ann_file'?)",
        "train_dataloader.dataset.tims: RepeatDataset takes no argument "
        "'tims' (did you mean 'times'?)",
        'test_dataloader.dataset.pipeline.0.transforms.0.0.keep_ration: '
        "Resize takes no argument 'keep_ration' (did you mean "
        "'keep_ratio'?)",
        "test_evaluator.0.metrc: CocoMetric takes no argument 'metrc' (did "
        "you mean 'metric'?)",
    ]


def test_foreign_transforms_and_evaluators():
    # Albu's transforms are albumentations configs, not registry types. A
    # dict with metrics is an evaluator, whose metrics are checked.
    albu = dict(type='Albu', transforms=[
        dict(type='RandomBrightnessContrast', brightness_limit=0.2),
        dict(type='RandomCrop', height=32, width=32)])
    cfg = Config(dict(
        default_scope='mmdet',
        train_dataloader=dict(dataset=dict(type='CocoDataset',
                                           pipeline=[albu])),
        val_evaluator=dict(type='MultiDatasetsEvaluator',
                           dataset_prefixes=['coco'],
                           metrics=[dict(type='CocoMetric', metrc='bbox')]),
        test_evaluator=dict(metrics=dict(type='CocoMetric'), typo=1)))

    problems = data_argument_problems(cfg, ('train', 'val', 'test'))

    assert problems == [
        "val_evaluator.metrics.0.metrc: CocoMetric takes no argument "
        "'metrc' (did you mean 'metric'?)",
        "test_evaluator.typo: Evaluator takes no argument 'typo'",
    ]


def test_augment_policies_and_missing_types():
    cfg = Config(dict(
        default_scope='mmdet',
        train_dataloader=dict(dataset=dict(type='CocoDataset', pipeline=[
            dict(type='AutoAugment',
                 policies=[[dict(type='Rotate', prb=0.5)]]),
            dict(type='RandAugment', aug_space=[[dict(type='ColorTransfrm')]]),
            dict(scale=(64, 64)),
        ])),
        val_evaluator=dict(metric='bbox')))

    problems = data_argument_problems(cfg, ('train', 'val'))

    assert problems == [
        'train_dataloader.dataset.pipeline.0.policies.0.0.prb: Rotate takes '
        "no argument 'prb' (did you mean 'prob'?)",
        "train_dataloader.dataset.pipeline.1.aug_space.0.0.type: "
        "'ColorTransfrm' is not a registered transform type (did you mean "
        "'ColorTransform'?)",
        'train_dataloader.dataset.pipeline.2.type: missing; every transform '
        'config names its type',
        'val_evaluator.type: missing; every metric config names its type',
    ]


def test_test_tool_rejects_test_time_augmentation(tmp_path):
    config = tmp_path / 'tta.py'
    config.write_text(
        f"_base_ = '{REPO_ROOT}/configs/ade20k/upernet_vim_t.py'\n"
        'test_dataloader = dict(dataset=dict(pipeline=[\n'
        "    dict(type='LoadImageFromFile'),\n"
        "    dict(type='TestTimeAug', transforms=[\n"
        "        [dict(type='Resize', scale=(512, 512), keep_ratio=True)],\n"
        "        [dict(type='RandomFlip', prob=1.0)],\n"
        "        [dict(type='LoadAnnotations')],\n"
        "        [dict(type='PackSegInputs')]])]))\n")
    checkpoint = tmp_path / 'model.pth'
    torch.save({'state_dict': {}}, checkpoint)

    stderr = tool_error('tools/test.py', str(config), str(checkpoint))

    assert 'test_dataloader.dataset.pipeline.1 is TestTimeAug' in stderr


def test_class_types_and_scope_keys():
    cfg = Config(dict(
        default_scope='mmseg',
        val_dataloader=dict(dataset=dict(
            type=ADE20KDataset, _scope_='mmseg', data_root='x')),
        val_evaluator=dict(type=IoUMetric, iou_metricz=['mIoU'])))

    assert data_argument_problems(cfg, ('val', )) == [
        "val_evaluator.iou_metricz: IoUMetric takes no argument "
        "'iou_metricz' (did you mean 'iou_metrics'?)"
    ]


def test_accepted_arguments_follow_kwargs():
    # ADE20KDataset passes **kwargs on to BaseSegDataset, which names them.
    # RandomResize passes them to the resize transform it builds, so any
    # name is accepted.
    assert {'img_suffix', 'data_root', 'pipeline'} <= accepted_arguments(
        ADE20KDataset)
    assert accepted_arguments(RandomResize) is None


def test_train_tool_names_misspelt_setting(tmp_path):
    work_dir = tmp_path / 'work'
    stderr = tool_error(
        'tools/train.py', 'configs/ade20k/upernet_vim_t.py', '--work-dir',
        str(work_dir), '--cfg-options',
        'train_dataloader.dataset.data_prefx.img_path=images')

    assert 'Invalid data or metric settings:' in stderr
    assert "(did you mean 'data_prefix'?)" in stderr
    assert not work_dir.exists()
