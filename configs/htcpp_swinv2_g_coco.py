# HTC++ with a SwinV2-G backbone (3.0 B parameters) on COCO at 1536x1536, window 32: the L recipe of
# configs/htcpp_swinv2_l_coco.py (paper appendix A2.1, "COCO object detection": "a multi-scale
# training with an input image size of 1536×1536, a window size of 32×32"; docs/recipes.md) with the
# giant arch, FSDP (one unit per block), activation checkpointing and sequential attention in stages 0-1
# (configs/memory/_giant_savers_.py). Published (paper Table 3): 63.1 / 54.4 box / mask AP on test-dev.
#
# No public SwinV2-G weights exist: bring your own (mmpretrain or SimMIM layout; the extra norms every
# 6 blocks are converted) and set the window they were trained with:
#
#   bash tools/dist_train.sh configs/htcpp_swinv2_g_coco.py 8 \
#       --cfg-options pretrained=PATH model.backbone.pretrained_window_size=W
#
# Memory per GPU for 8 / 16 / 32 GPUs of 40 / 80 GB: docs/distributed.md, "Memory plan".
_base_ = ['./htcpp_swinv2_l_coco.py', './memory/_giant_savers_.py']

pretrained = 'checkpoints/swinv2_giant.pth'
model = dict(
    backbone=dict(
        arch='giant',
        window_size=32,
        pretrained_window_size=0,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained),
        **_base_.giant_backbone),
    neck=dict(in_channels=[512, 1024, 2048, 4096]))
