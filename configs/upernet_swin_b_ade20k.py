"""UPerNet + Swin V1-B (mmseg's SwinTransformer) on ADE20K: the V1-T config with the base backbone,
at 512x512, the published Swin V1-B recipe (48.1 mIoU).

Backbone: the public ImageNet-1K swin_base_patch4_window7_224.pth (224 px, window 7; the checkpoint
of the published 48.1 mIoU), converted by tools/convert_checkpoint.py.
"""
_base_ = ['./upernet_swin_t_ade20k.py']

pretrained = 'checkpoints/swin_base_patch4_window7_224_v1.pth'  # --cfg-options pretrained=PATH
model = dict(
    backbone=dict(
        embed_dims=128,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32],
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
