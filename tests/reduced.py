"""Config overrides that shrink the shipped configs for CPU tests.

The shipped configs stay full size; tests apply these through
``Config.merge_from_dict`` or ``--cfg-options``.
"""
from pathlib import Path
from typing import Dict, List

REPO_ROOT = Path(__file__).resolve().parents[1]
ADE_ROOT = str(REPO_ROOT / 'data' / 'ade20k_mini')
COCO_ROOT = str(REPO_ROOT / 'data' / 'coco_mini') + '/'

WIDTH = 32
BACKBONE = {
    'model.backbone.embed_dims': WIDTH,
    'model.backbone.num_layers': 2,
    'model.backbone.state_size': 4,
    'model.backbone.img_size': 64,
    'model.backbone.init_cfg': None,
}

SEG = dict(BACKBONE, **{
    'model.data_preprocessor.size': (64, 64),
    'model.decode_head.in_channels': [WIDTH] * 4,
    'model.decode_head.channels': 16,
    'model.auxiliary_head.in_channels': WIDTH,
    'model.auxiliary_head.channels': 16,
    'train_dataloader.dataset.data_root': ADE_ROOT,
    'val_dataloader.dataset.data_root': ADE_ROOT,
    'test_dataloader.dataset.data_root': ADE_ROOT,
    # RandomResize, RandomCrop and the test-time Resize.
    'train_dataloader.dataset.pipeline.2.scale': (128, 64),
    'train_dataloader.dataset.pipeline.3.crop_size': (64, 64),
    'val_dataloader.dataset.pipeline.1.scale': (128, 64),
    'test_dataloader.dataset.pipeline.1.scale': (128, 64),
})

DET = dict(BACKBONE, **{
    'model.backbone.img_size': (64, 96),
    'model.neck.in_channels': [WIDTH] * 4,
    'train_dataloader.dataset.data_root': COCO_ROOT,
    'val_dataloader.dataset.data_root': COCO_ROOT,
    'test_dataloader.dataset.data_root': COCO_ROOT,
    'train_dataloader.dataset.pipeline.2.scale': (160, 128),
    'val_dataloader.dataset.pipeline.1.scale': (160, 128),
    'test_dataloader.dataset.pipeline.1.scale': (160, 128),
})

COCO_VAL_ANN = COCO_ROOT + 'annotations/instances_val2017.json'
# The Vim configs have one evaluator; the MambaScope ones a list whose first
# entry is the COCO metric.
DET_EVAL = {
    'val_evaluator.ann_file': COCO_VAL_ANN,
    'test_evaluator.ann_file': COCO_VAL_ANN,
}
DET_SCOPE_EVAL = {
    'val_evaluator.0.ann_file': COCO_VAL_ANN,
    'test_evaluator.0.ann_file': COCO_VAL_ANN,
}

RUNTIME = {
    'train_dataloader.batch_size': 2,
    'train_dataloader.num_workers': 0,
    'train_dataloader.persistent_workers': False,
    'val_dataloader.num_workers': 0,
    'val_dataloader.persistent_workers': False,
    'test_dataloader.num_workers': 0,
    'test_dataloader.persistent_workers': False,
    'default_hooks.logger.interval': 1,
}


def cfg_options(overrides: Dict) -> List[str]:
    """Format overrides as ``--cfg-options`` arguments."""
    args = []
    for key, value in overrides.items():
        if isinstance(value, (list, tuple)):
            text = ','.join(str(v) for v in value)
            value = f'[{text}]' if isinstance(value, list) else f'({text})'
        args.append(f'{key}={value}')
    return args
