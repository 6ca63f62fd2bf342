# UperNet with a Vim-small backbone on ADE20K; everything else as in
# upernet_vim_t.py.
_base_ = './upernet_vim_t.py'
model = dict(
    backbone=dict(
        arch='small',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/vim_s_midclstok_80p5acc.pth')),
    decode_head=dict(in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384))
