"""UPerNet + Swin V1-T (mmseg's own ``SwinTransformer``) on ADE20K: the SwinV2-T config
(upernet_swinv2_t_ade20k.py: 512x512 crops, 160k iterations, AdamW 6e-5, warm-up + poly) with only
the backbone replaced, so V1 and V2 compare under one recipe (see docs/swin_v1_vs_v2.md).

Backbone: the public ImageNet-1K swin_tiny_patch4_window7_224.pth, window 7, converted once to
mmseg's key layout (mmseg's SwinTransformer loads it as it is; it has no ``convert_weights``)::

    python tools/convert_checkpoint.py swin_tiny_patch4_window7_224.pth checkpoints/swin_tiny_patch4_window7_224_v1.pth
    python tools/train.py configs/upernet_swin_t_ade20k.py --cfg-options pretrained=PATH
"""
_base_ = ['./upernet_swinv2_t_ade20k.py']

pretrained = 'checkpoints/swin_tiny_patch4_window7_224_v1.pth'  # --cfg-options pretrained=PATH
model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',  # mmseg's Swin V1
        embed_dims=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,  # the window of the public V1 checkpoints (V1's bias table is window-sized)
        mlp_ratio=4,
        qkv_bias=True,
        patch_norm=True,
        drop_path_rate=0.3,  # as the V2 parent
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))

# No weight decay on V1's position parameters, the counterparts of V2's cpb_mlp / logit_scale in the
# parent's list (merged into it; they match no V2 parameter). The parent's 'norm' key covers V1's norms.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'relative_position_bias_table': dict(decay_mult=0.),
    'absolute_pos_embed': dict(decay_mult=0.),
}))
