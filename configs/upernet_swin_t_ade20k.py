"""UPerNet + Swin V1-T (mmseg's own ``SwinTransformer``) on ADE20K: the published Swin V1 recipe
(SwinTransformer/Swin-Transformer-Semantic-Segmentation ``upernet_swin_tiny_patch4_window7_512x512_160k_ade20k.py``,
as mmseg's configs/swin: AdamW lr 6e-5, weight decay 0.01, no layer decay) on the data, heads and
schedule of the SwinV2-T config (upernet_swinv2_t_ade20k.py: 512x512 crops, 160k iterations, warm-up
1500 + poly), so its result can be compared with the published 44.5 mIoU (see docs/recipes.md).

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

# The V1 optimizer (no layer decay); no weight decay on V1's position parameters and norms, as the
# official config.
optim_wrapper = dict(
    _delete_=True,
    type='NanGuardOptimWrapper',
    on_nonfinite='stop',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={
        'relative_position_bias_table': dict(decay_mult=0.),
        'absolute_pos_embed': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.),
    }))
