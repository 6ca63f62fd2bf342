# UperNet on a MambaScope backbone. Widths here are those of Vim-tiny;
# configs set their own.
_base_ = './upernet_vim.py'

model = dict(
    type='ScopeEncoderDecoder',
    # Coarse-path losses and the fine-to-coarse distillation train the
    # coarse stage to stand on its own for images that stop at the gate.
    coarse_loss_weight=0.5,
    distill_loss_weight=0.5,
    backbone=dict(
        type='MambaScope',
        # An image whose gate confidence reaches the threshold stops at the
        # coarse stage; the others refine the top refine_ratio of cells.
        threshold=0.9,
        refine_ratio=0.8,
        score_layers=None,  # the second half of the layers
        score_momentum=0.99,
        gate_head=dict(
            type='ScopeGateHead',
            num_classes=150,
            mode='multilabel',
            confidence='min',
            loss_weight=1.0)))
