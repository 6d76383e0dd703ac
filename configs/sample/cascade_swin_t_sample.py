# The detection sample (cascade_swinv2_t_sample.py) with a small Swin V1 backbone (mmdet's
# SwinTransformer) instead of the small SwinV2: same detector, data, schedule and tools, so the two
# samples compare V1 and V2 on the synthetic COCO-style data (numbers in docs/swin_v1_vs_v2.md):
#
#   python tools/make_sample_data.py --task coco
#   OMP_NUM_THREADS=1 python tools/train.py configs/sample/cascade_swin_t_sample.py
#   OMP_NUM_THREADS=1 python tools/test.py configs/sample/cascade_swin_t_sample.py \
#       work_dirs/cascade_swin_t_sample/epoch_3.pth --metrics-out work_dirs/sample_v1_metrics.json
_base_ = './cascade_swinv2_t_sample.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',  # mmdet's Swin V1
        embed_dims=32,
        depths=[1, 1, 2, 1],
        num_heads=[1, 2, 4, 8],
        window_size=8,  # the V2 sample's window: the 128-192 px images give 32-48 token stage-0 maps
        mlp_ratio=4,
        qkv_bias=True,
        patch_norm=True,
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3),
        convert_weights=False,
        with_cp=False,
        init_cfg=None))
# the V1 counterparts of the V2 no-decay keys, as configs/cascade_swin_t_coco.py
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'relative_position_bias_table': dict(decay_mult=0.),
    'absolute_pos_embed': dict(decay_mult=0.),
}))
