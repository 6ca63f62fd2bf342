# ADE20K as in ade20k.py, evaluated with the refine share and GFLOPs of
# MambaScope next to mIoU, and the refine-ratio schedule of MambaScope
# training: every cell is refined for the first two thirds of the
# iterations, then the configured refine_ratio applies.
_base_ = './ade20k.py'
val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='ScopeMetric'),
]
test_evaluator = val_evaluator
custom_hooks = [dict(type='ScopeSelectionHook', switch_at=2 / 3)]
