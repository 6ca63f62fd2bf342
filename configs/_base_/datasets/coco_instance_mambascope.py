# COCO instance segmentation as in coco_instance.py. The evaluation adds
# MambaScope's refine share and GFLOPs next to box and mask AP. Training
# refines every cell for the first two thirds of the iterations, and the
# configured refine_ratio applies after that.
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
