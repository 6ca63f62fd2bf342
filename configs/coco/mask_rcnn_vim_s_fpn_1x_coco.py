# Mask R-CNN with FPN and a Vim-small backbone on COCO; everything else as in
# mask_rcnn_vim_t_fpn_1x_coco.py.
_base_ = './mask_rcnn_vim_t_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='small',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/vim_s_midclstok_80p5acc.pth')),
    neck=dict(in_channels=[384, 384, 384, 384]))
