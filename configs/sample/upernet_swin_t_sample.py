"""The segmentation sample (upernet_swinv2_t_sample.py) with a tiny Swin V1 backbone (mmseg's
``SwinTransformer``) instead of the tiny SwinV2: same UPerNet, data, schedule and tools, so the two
samples compare V1 and V2 on the synthetic ADE20K-format data (numbers in docs/swin_v1_vs_v2.md)::

    python tools/make_sample_data.py --task ade
    python tools/train.py configs/sample/upernet_swin_t_sample.py --work-dir work_dirs/seg_sample_v1
    python tools/test.py configs/sample/upernet_swin_t_sample.py work_dirs/seg_sample_v1/iter_400.pth \\
        --metrics-out work_dirs/seg_sample_v1/metrics.json
"""
_base_ = ['./upernet_swinv2_t_sample.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',  # mmseg's Swin V1
        embed_dims=32,
        depths=[2, 2, 2, 2],
        num_heads=[1, 2, 4, 8],
        window_size=8,  # the V2 sample's window
        mlp_ratio=4,
        qkv_bias=True,
        patch_norm=True,
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=None))
# the V1 counterparts of the V2 no-decay keys, as configs/upernet_swin_t_ade20k.py
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'relative_position_bias_table': dict(decay_mult=0.),
    'absolute_pos_embed': dict(decay_mult=0.),
}))
