# ADE20K as in ade20k.py. The evaluation adds MambaScope's refine share and
# GFLOPs next to mIoU. Training refines every cell for the first two thirds
# of the iterations, and the configured refine_ratio applies after that.
_base_ = './ade20k.py'
val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='ScopeMetric'),
]
test_evaluator = val_evaluator
custom_hooks = [dict(type='ScopeSelectionHook', switch_at=2 / 3)]
