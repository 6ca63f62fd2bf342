# UperNet with a MambaScope Vim-base backbone on ADE20K; everything else as
# in upernet_mambascope_t.py.
_base_ = './upernet_mambascope_t.py'
model = dict(
    backbone=dict(
        arch='base',
        threshold=0.9,
        refine_ratio=0.8,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/vim_b_midclstok_81p9acc.pth')),
    decode_head=dict(in_channels=[768, 768, 768, 768]),
    auxiliary_head=dict(in_channels=768))
