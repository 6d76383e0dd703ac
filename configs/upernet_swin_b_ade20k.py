"""UPerNet + Swin V1-B (mmseg's SwinTransformer) on ADE20K: the V1-T config with the base backbone,
as upernet_swinv2_b_ade20k.py is the V2-T one with it. It differs from upernet_swinv2_b_ade20k.py
only in the backbone (checked by tests/configs/test_v1_configs.py).

Backbone: the public ImageNet-22K swin_base_patch4_window7_224_22k.pth (ImageNet-22K as the V2-B
parent's checkpoint; 224 px, window 7), converted by tools/convert_checkpoint.py. For the 384-px
window-12 22K checkpoint add ``model.backbone.window_size=12 model.backbone.pretrain_img_size=384``.
"""
_base_ = ['./upernet_swin_t_ade20k.py']

pretrained = 'checkpoints/swin_base_patch4_window7_224_22k_v1.pth'  # --cfg-options pretrained=PATH
model = dict(
    backbone=dict(
        embed_dims=128,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32],
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
