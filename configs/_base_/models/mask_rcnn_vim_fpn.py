# Mask R-CNN with FPN from mmdetection, its ResNet replaced by Vision Mamba.
# Widths here are those of Vim-tiny; configs set their own.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='VisionMamba',
        arch='tiny',
        img_size=(800, 1344),
        drop_path_rate=0.1,
        norm_cfg=dict(type='SyncBN', requires_grad=True)),
    neck=dict(in_channels=[192, 192, 192, 192]))
