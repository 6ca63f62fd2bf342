# Mask R-CNN with FPN and a MambaScope Vim-small backbone on COCO; everything
# else as in mask_rcnn_mambascope_t_fpn_1x_coco.py.
_base_ = './mask_rcnn_mambascope_t_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='small',
        threshold=0.9,
        refine_ratio=0.8,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/vim_s_midclstok_80p5acc.pth')),
    neck=dict(in_channels=[384, 384, 384, 384]))
