# Cascade Mask R-CNN + FPN with a Swin V1-T backbone (mmdet's own SwinTransformer) on COCO: the
# SwinV2-T config (cascade_swinv2_t_coco.py: 3x schedule, multi-scale + crop, AdamW 1e-4, weight decay
# 0.05, no layer decay) with only the backbone replaced: the official Swin V1 Cascade 3x recipe, whose
# published results (50.4 / 51.9 / 51.9 box AP for T / S / B) are the targets. See docs/recipes.md.
#
#   python tools/convert_checkpoint.py swin_tiny_patch4_window7_224.pth checkpoints/swin_tiny_patch4_window7_224_v1.pth
#   python tools/train.py configs/cascade_swin_t_coco.py --cfg-options pretrained=PATH [--amp]
_base_ = './cascade_swinv2_t_coco.py'

# The public ImageNet-1K, 224 px, window-7 Swin-T, converted to mmdet's key layout by
# tools/convert_checkpoint.py (hence convert_weights=False below). Override with --cfg-options pretrained=PATH.
pretrained = 'checkpoints/swin_tiny_patch4_window7_224_v1.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',  # mmdet's Swin V1
        embed_dims=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,  # the window of the public V1 checkpoints (V1's bias table is window-sized)
        mlp_ratio=4,
        qkv_bias=True,
        patch_norm=True,
        drop_path_rate=0.2,  # the official Swin V1-T Cascade config
        out_indices=(0, 1, 2, 3),
        convert_weights=False,
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))

# No weight decay on V1's position parameters, the counterparts of V2's cpb_mlp / logit_scale in the
# parent's list (merged into it; they match no V2 parameter). Norms are covered by norm_decay_mult=0.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'relative_position_bias_table': dict(decay_mult=0.),
    'absolute_pos_embed': dict(decay_mult=0.),
}))
