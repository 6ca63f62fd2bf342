# Mask R-CNN with FPN and a MambaScope Vim-tiny backbone on COCO, 1x
# schedule, as the Vim Mask R-CNN configs.
# Download the official Vim ImageNet weights to checkpoints/ first (see
# docs/getting_started.md), or set model.backbone.init_cfg=None to train from
# scratch.
_base_ = [
    '../_base_/models/mask_rcnn_mambascope_fpn.py',
    '../_base_/datasets/coco_instance_mambascope.py',
    '../_base_/default_runtime_det.py', '../_base_/schedules/schedule_1x.py'
]
model = dict(
    backbone=dict(
        arch='tiny',
        img_size=(800, 1344),
        threshold=0.9,
        refine_ratio=0.8,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/vim_t_midclstok_76p1acc.pth')),
    neck=dict(in_channels=[192, 192, 192, 192]))
# 8 GPUs x 2 images = a total batch of 16.
train_dataloader = dict(batch_size=2)
