"""PyTorch inference mode (swin_dense/inference/inference_mode.py): the predictors give the results of
the model as built, with BatchNorms folded and torchvision's RoIAlign kernel."""
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from inference_helpers import DET_CONFIG, SEG_CONFIG, random_checkpoint  # noqa: E402

# fp32 with another op order (a folded convolution) and Winograd's rounding: measured below 1e-5 on the
# sample models' logits and boxes; a BatchNorm folded wrongly or a RoI pooled half a pixel off moves
# them by O(0.1)
TOL = 1e-4


def _with_random_norms(task: str, folder) -> str:
    """The random sample checkpoint with BatchNorm statistics and affine weights far from identity, so
    that folding them is visible in the outputs."""
    ckpt = torch.load(random_checkpoint(task, str(folder)), weights_only=False)
    gen = torch.Generator().manual_seed(0)
    for key, value in ckpt['state_dict'].items():
        if key.endswith(('running_mean', 'bn.bias')) or ('.bn.' in key and key.endswith('bias')):
            ckpt['state_dict'][key] = 0.3 * torch.randn(value.shape, generator=gen)
        elif key.endswith('running_var') or ('.bn.' in key and key.endswith('weight')):
            ckpt['state_dict'][key] = 0.5 + torch.rand(value.shape, generator=gen)
    path = os.path.join(str(folder), f'{task}_norms.pth')
    torch.save(ckpt, path)
    return path


def test_roi_align_through_torchvision_gives_mmcvs_values():
    from mmcv.ops import RoIAlign
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 8, 40, 56, generator=gen)
    xy = torch.rand(300, 2, generator=gen) * 240 - 10  # some boxes reach over the border
    wh = torch.rand(300, 2, generator=gen) * 80 + 0.5  # and some are below one feature pixel
    rois = torch.cat([torch.randint(0, 2, (300, 1), generator=gen).float(), xy, xy + wh], dim=1)
    mmcv_layer = RoIAlign(7, spatial_scale=0.25, sampling_ratio=0, aligned=True)
    tv_layer = RoIAlign(7, spatial_scale=0.25, sampling_ratio=0, aligned=True, use_torchvision=True)
    # measured bit-equal; the bound allows a kernel that sums the samples in another order
    torch.testing.assert_close(tv_layer(feats, rois.clone()), mmcv_layer(feats, rois), atol=1e-6, rtol=0)


def test_segmentor_in_inference_mode_gives_the_models_logits(tmp_path):
    from mmengine.registry import init_default_scope

    from swin_dense.inference.predictor import Predictor
    ckpt = _with_random_norms('seg', tmp_path)
    built = Predictor(SEG_CONFIG, ckpt, inference_mode=False)
    fast = Predictor(SEG_CONFIG, ckpt)
    assert built.describe()['inference_mode'] == [] and built.inference_mode == ()
    folding, *winograd = fast.describe()['inference_mode']
    assert folding.startswith('conv-BN folding (') and folding != 'conv-BN folding (0 BatchNorms)'
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fast.model.modules())
    # the sample UPerNet's PSP bottleneck, three FPN convolutions, fpn_bottleneck and the auxiliary
    # head's convolution (built, not run at test time)
    assert winograd == ['Winograd 3x3 convolutions (6)']
    assert built.runtime_summary() == 'pytorch, as built'
    assert fast.runtime_summary() == 'pytorch, inference mode: ' + ', '.join([folding, *winograd])
    init_default_scope('mmseg')
    # 1/4 scale 32 x 40: the FPN convolutions and fpn_bottleneck run through NNPACK (where PyTorch has it)
    x = torch.randn(1, 3, 128, 160, generator=torch.Generator().manual_seed(1))
    meta = [dict(img_shape=(128, 160), pad_shape=(128, 160))]
    with torch.no_grad():
        ref, got = built.model.encode_decode(x, meta), fast.model.encode_decode(x, meta)
    assert ref.abs().max() > 0.1
    torch.testing.assert_close(got, ref, atol=TOL, rtol=0)


def test_detector_in_inference_mode_gives_the_models_detections(tmp_path, coco_sample, monkeypatch):
    from swin_dense.inference import winograd
    from swin_dense.inference.predictor import Predictor
    # the sample's RoI heads have 64 channels: let F(4x4, 3x3) take them, as it takes the real ones
    monkeypatch.setattr(winograd, 'MIN_CHANNELS', 64)
    ckpt = _with_random_norms('det', tmp_path)
    options = {'model.test_cfg.rpn.max_per_img': 50, 'model.test_cfg.rcnn.max_per_img': 20,
               'model.test_cfg.rcnn.score_thr': 0.0}
    built = Predictor(DET_CONFIG, ckpt, cfg_options=options, inference_mode=False)
    fast = Predictor(DET_CONFIG, ckpt, cfg_options=options)
    assert 'torchvision RoIAlign (24)' in fast.inference_mode  # 4 FPN levels x (box + mask) x 3 stages
    assert 'channels-last RoI heads' in fast.inference_mode and 'torchvision NMS (2)' in fast.inference_mode
    assert fast.model.roi_head.mask_head[0].convs[0].conv.weight.is_contiguous(
        memory_format=torch.channels_last)
    algorithms = []
    for conv in (fast.model.roi_head.bbox_head[0].shared_convs[0].conv, fast.model.roi_head.mask_head[0].convs[0].conv):
        assert isinstance(conv, winograd.WinogradConv2d)
        conv.register_forward_pre_hook(lambda m, args: algorithms.append((m.algorithm(args[0]), args[0].shape[0])))
    folder = os.path.join(coco_sample, 'val2017')
    for name in sorted(os.listdir(folder))[:2]:
        data = fast.prepare(fast.read(os.path.join(folder, name)))
        ref, got = (p.predict([data])[0].pred_instances for p in (built, fast))
        # 50 proposals of 7 x 7 (200 tiles) and 20 detections of 14 x 14 (320 tiles): F(4x4, 3x3)
        assert algorithms[-2:] == [('f4x4', 50), ('f4x4', 20)]
        assert len(ref) == len(got) == 20
        torch.testing.assert_close(got.bboxes, ref.bboxes, atol=TOL * 10, rtol=0)  # px on ~160 px images
        torch.testing.assert_close(got.scores, ref.scores, atol=TOL, rtol=0)
        assert torch.equal(got.labels, ref.labels)
        assert (got.masks != ref.masks).float().mean() < 0.01  # a pixel may flip where a mask is at 0.5


def test_training_mode_is_refused():
    from mmcv.cnn import ConvModule

    from swin_dense.inference.inference_mode import to_inference_mode
    with pytest.raises(ValueError, match='call model.eval'):
        to_inference_mode(ConvModule(3, 4, 3, norm_cfg=dict(type='BN')).train())
    module = ConvModule(3, 4, 3, norm_cfg=dict(type='BN')).eval()
    assert to_inference_mode(module) == ['conv-BN folding (1 BatchNorms)', 'Winograd 3x3 convolutions (1)']
    assert np.isfinite(module(torch.randn(1, 3, 8, 8)).detach().numpy()).all()
