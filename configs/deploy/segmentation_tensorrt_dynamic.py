# TensorRT dynamic-shape profile for a graph written by tools/export_onnx.py (docs/deploy.md).
#
# NOT RUN HERE: this project's machines have no GPU and no TensorRT; nothing in the repository reads
# this file. It is the min / opt / max profile of mmdeploy's TensorRT configs (backend_config.
# model_inputs[].input_shapes, as in mmdeploy's configs/mmseg/segmentation_tensorrt_dynamic-512x1024-
# 2048x2048.py), written for our graph's input name, and docs/deploy.md gives the equivalent trtexec
# command (--minShapes / --optShapes / --maxShapes, TensorRT's documented flags).
#
# The graph's size policy still holds under TensorRT: a dynamic export runs only at sides of at least
# export.json's size_policy.min_side (257 for 8 px windows, 513 for the 16 px windows of
# upernet_swinv2_*_ade20k.py); min_shape must not go below it. A fixed export has min = opt = max.
backend_config = dict(
    type='tensorrt',
    common_config=dict(fp16_mode=False, max_workspace_size=1 << 30),
    model_inputs=[
        dict(
            input_shapes=dict(
                inputs=dict(
                    min_shape=[1, 3, 513, 513],
                    opt_shape=[1, 3, 640, 853],
                    max_shape=[1, 3, 1024, 2048])))
    ])
