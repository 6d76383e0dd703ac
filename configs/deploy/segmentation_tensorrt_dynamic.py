# TensorRT dynamic-shape profile for a graph written by tools/export_onnx.py (docs/deploy.md).
#
# NOT RUN HERE: this project's machines have no GPU and no TensorRT; nothing in the repository reads
# this file. It is the min / opt / max profile of mmdeploy's TensorRT configs (backend_config.
# model_inputs[].input_shapes, as in mmdeploy's configs/mmseg/segmentation_tensorrt_dynamic-512x1024-
# 2048x2048.py), written for our graph's input name, and docs/deploy.md gives the equivalent trtexec
# command (--minShapes / --optShapes / --maxShapes, TensorRT's documented flags).
#
# The graph's size policy still holds under TensorRT: a dynamic export runs at sides of at least
# export.json's size_policy.min_side (one 4 px patch); min_shape must not go below it. The min here
# covers the ADE20K configs' short side of 512 with room below. A fixed export has min = opt = max.
backend_config = dict(
    type='tensorrt',
    common_config=dict(fp16_mode=False, max_workspace_size=1 << 30),
    model_inputs=[
        dict(
            input_shapes=dict(
                inputs=dict(
                    min_shape=[1, 3, 256, 256],
                    opt_shape=[1, 3, 640, 853],
                    max_shape=[1, 3, 1024, 2048])))
    ])
