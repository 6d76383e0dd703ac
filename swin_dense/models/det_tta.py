"""Multi-scale + flip test-time augmentation for instance segmentation (Cascade Mask R-CNN, HTC).

mmdet 3.3's ``DetTTAModel`` cannot run these detectors with flipped views, for two reasons:

* Cascade Mask R-CNN and HTC average the mask logits of their stages with
  ``mmdet.models.test_time_augs.merge_aug_masks`` (``CascadeRoIHead.predict_mask``,
  ``HybridTaskCascadeRoIHead.predict_mask``). That function was written for merging augmented
  views: when the image meta says ``flip=True`` it un-flips each mask with ``mask[..., ::-1]``, a
  negative-step slice that torch tensors refuse (``ValueError: step must be greater than zero``).
  Un-flipping is also wrong there: all stages predict in the same (flipped) frame.
* ``DetTTAModel._merge_single_sample`` asserts that the predictions carry no masks.

``InstanceSegTTAModel`` runs each view with ``flip=False`` in its meta (the per-stage average then
stays in the view's frame, which is what it should be), keeps the view's flip under ``tta_flip``,
and merges the views itself: boxes and masks are mapped back to the unflipped image, all views'
instances are pooled and ``tta_cfg.nms`` (per class, mmcv's ``batched_nms``) keeps the best,
each kept instance with its own mask.
"""
from typing import Dict, List

import torch
from mmdet.models.test_time_augs import DetTTAModel
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_flip
from mmengine.registry import MODELS
from mmengine.structures import InstanceData
from mmcv.ops import batched_nms

#: the mask dimensions each flip direction reverses, for masks of shape (N, H, W)
FLIP_DIMS = {'horizontal': [-1], 'vertical': [-2], 'diagonal': [-2, -1]}


@MODELS.register_module()
class InstanceSegTTAModel(DetTTAModel):
    """``DetTTAModel`` that also merges instance masks and runs Cascade / HTC mask heads on flipped views.

    Config (the detection configs' ``tta_model``)::

        tta_model = dict(type='InstanceSegTTAModel',
                         tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
    """

    def test_step(self, data: Dict) -> List[DetDataSample]:
        """Predict every view of a batch and merge the views of each image.

        Args:
            data: mmengine's TTA batch, ``{'inputs': [view][image] (3, H, W) tensors,
                'data_samples': [view][image] DetDataSample}``.

        Returns:
            one merged ``DetDataSample`` per image, boxes and masks in original image coordinates.
        """
        for view in data['data_samples']:
            for sample in view:
                sample.set_metainfo(dict(tta_flip=sample.metainfo.get('flip', False), flip=False))
        return super().test_step(data)

    def _merge_single_sample(self, data_samples: List[DetDataSample]) -> DetDataSample:
        """Merge the views of one image: un-flip, pool, per-class NMS, masks follow their boxes."""
        for sample in data_samples:
            sample.set_metainfo(dict(flip=sample.metainfo['tta_flip']))
        if data_samples[0].pred_instances.get('masks', None) is None:
            return super()._merge_single_sample(data_samples)
        bboxes, scores, labels, masks = [], [], [], []
        for sample in data_samples:
            pred, meta = sample.pred_instances, sample.metainfo
            view_boxes, view_masks = pred.bboxes, pred.masks
            if meta['flip']:
                view_boxes = bbox_flip(view_boxes, img_shape=meta['ori_shape'], direction=meta['flip_direction'])
                view_masks = torch.flip(view_masks, dims=FLIP_DIMS[meta['flip_direction']])
            bboxes.append(view_boxes)
            scores.append(pred.scores)
            labels.append(pred.labels)
            masks.append(view_masks)
        bboxes, scores, labels, masks = (torch.cat(x, dim=0) for x in (bboxes, scores, labels, masks))
        merged = data_samples[0]
        if bboxes.numel() == 0:
            return merged
        dets, keep = batched_nms(bboxes, scores, labels, self.tta_cfg.nms)
        keep = keep[:self.tta_cfg.max_per_img]
        results = InstanceData()
        results.bboxes = dets[:len(keep), :-1]
        results.scores = dets[:len(keep), -1]
        results.labels = labels[keep]
        results.masks = masks[keep]
        merged.pred_instances = results
        return merged


__all__ = ['InstanceSegTTAModel']
