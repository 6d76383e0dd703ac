"""UPerNet + SwinV2-G (3.0 B parameters) on ADE20K at 640x640, window 40.

The L recipe of configs/upernet_swinv2_l_ade20k.py (paper appendix A2.1, ADE20K: "The input image
size (window size) is set 640×640 (40×40)"; docs/recipes.md) with the giant arch, FSDP (one unit per block),
activation checkpointing and sequential attention in stages 0-1 (configs/memory/_giant_savers_.py).
Published (paper Table 4): 59.9 mIoU with multi-scale test.

No public SwinV2-G weights exist: bring your own (mmpretrain or SimMIM layout; the extra norms every
6 blocks are converted) and set the window they were trained with::

    bash tools/dist_train.sh configs/upernet_swinv2_g_ade20k.py 8 \
        --cfg-options pretrained=PATH model.backbone.pretrained_window_size=W

Memory per GPU for 8 / 16 / 32 GPUs of 40 / 80 GB: docs/distributed.md, "Memory plan".
"""
_base_ = ['./upernet_swinv2_l_ade20k.py', './memory/_giant_savers_.py']

pretrained = 'checkpoints/swinv2_giant.pth'
model = dict(
    backbone=dict(
        arch='giant',
        pretrained_window_size=0,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained),
        **_base_.giant_backbone),
    decode_head=dict(in_channels=[512, 1024, 2048, 4096]),
    auxiliary_head=dict(in_channels=2048))
