"""UPerNet + SwinV2-B on ADE20K, 512x512, 160k iterations: the SwinV2-T recipe with the base backbone.

Backbone: the public ImageNet-22K swinv2_base_patch4_window12_192_22k.pth (192 px, window 12, so
pretrained windows [12, 12, 12, 6]), fine-tuned with window 16.
"""
_base_ = ['./upernet_swinv2_t_ade20k.py']

pretrained = 'checkpoints/swinv2_base_patch4_window12_192_22k.pth'  # --cfg-options pretrained=PATH
model = dict(
    backbone=dict(
        arch='base',
        window_size=16,
        pretrained_window_size=[12, 12, 12, 6],
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
