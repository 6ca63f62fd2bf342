# Mask R-CNN with FPN on a MambaScope backbone. Widths here are those of
# Vim-tiny; configs set their own.
_base_ = './mask_rcnn_vim_fpn.py'

model = dict(
    type='ScopeMaskRCNN',
    coarse_loss_weight=0.5,
    backbone=dict(
        type='MambaScope',
        threshold=0.9,
        refine_ratio=0.8,
        score_layers=None,  # the second half of the layers
        score_momentum=0.99,
        gate_head=dict(
            type='ScopeGateHead',
            num_classes=80,
            mode='multilabel',
            confidence='min',
            loss_weight=1.0)))
