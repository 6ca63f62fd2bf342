# UperNet with a MambaScope Vim-tiny backbone on ADE20K: the data and
# schedule of the Vim UperNet configs (512x512 crops, 160k iterations).
# Download the official Vim ImageNet weights to checkpoints/ first (see
# docs/getting_started.md), or set model.backbone.init_cfg=None to train from
# scratch.
_base_ = [
    '../_base_/models/upernet_mambascope.py',
    '../_base_/datasets/ade20k_mambascope.py',
    '../_base_/default_runtime_seg.py', '../_base_/schedules/schedule_160k.py'
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='tiny',
        img_size=512,
        threshold=0.9,
        refine_ratio=0.8,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/vim_t_midclstok_76p1acc.pth')),
    decode_head=dict(in_channels=[192, 192, 192, 192], num_classes=150),
    auxiliary_head=dict(in_channels=192, num_classes=150))
# 8 GPUs x 2 images = a total batch of 16.
train_dataloader = dict(batch_size=2)
