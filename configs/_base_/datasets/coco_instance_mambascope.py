# COCO instance segmentation as in coco_instance.py, evaluated with the
# refine share and GFLOPs of MambaScope next to box and mask AP, and the
# refine-ratio schedule of MambaScope training: every cell is refined for the
# first two thirds of the iterations, then the configured refine_ratio
# applies.
_base_ = './coco_instance.py'
val_evaluator = [
    dict(
        type='CocoMetric',
        ann_file='data/coco/annotations/instances_val2017.json',
        metric=['bbox', 'segm'],
        format_only=False),
    dict(type='ScopeMetric'),
]
test_evaluator = val_evaluator
custom_hooks = [dict(type='ScopeSelectionHook', switch_at=2 / 3)]
