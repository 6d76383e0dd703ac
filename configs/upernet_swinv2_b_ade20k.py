"""UPerNet + SwinV2-B (ImageNet-22K) on ADE20K: the SwinV2-L recipe of the paper's appendix A2.1
(upernet_swinv2_l_ade20k.py: 640x640, window 40, batch 64, 40k iterations) with the base backbone.
The paper reports no ADE20K number for SwinV2-B (Table 4 lists L and G).

Backbone: the public ImageNet-22K swinv2_base_patch4_window12_192_22k.pth (192 px, window 12, so
pretrained windows [12, 12, 12, 6]).
"""
_base_ = ['./upernet_swinv2_l_ade20k.py']

pretrained = 'checkpoints/swinv2_base_patch4_window12_192_22k.pth'  # --cfg-options pretrained=PATH
model = dict(
    backbone=dict(arch='base', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
