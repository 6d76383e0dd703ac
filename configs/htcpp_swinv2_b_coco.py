# HTC++ with a SwinV2-B backbone on COCO: htcpp_swinv2_l_coco.py (the paper's appendix A2.1 recipe)
# with the base backbone. The paper reports no COCO number for SwinV2-B (Table 3 lists L and G).
_base_ = './htcpp_swinv2_l_coco.py'

# ImageNet-22K, 192 px, window 12 (the last stage's 6x6 map is one window: [12, 12, 12, 6]).
pretrained = 'checkpoints/swinv2_base_patch4_window12_192_22k.pth'

model = dict(
    backbone=dict(arch='base', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
