# UperNet with a MambaScope Vim-small backbone on ADE20K; everything else as
# in upernet_mambascope_t.py.
_base_ = './upernet_mambascope_t.py'
model = dict(
    backbone=dict(
        arch='small',
        threshold=0.9,
        refine_ratio=0.8,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/vim_s_midclstok_80p5acc.pth')),
    decode_head=dict(in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384))
