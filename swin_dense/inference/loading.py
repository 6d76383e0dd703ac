"""Which predictor runs a checkpoint: ONNX Runtime for an exported ``.onnx`` file, else PyTorch."""
from typing import Dict, Optional

from .predictor import Predictor


def load_predictor(config: str, checkpoint: str, device: str = 'cpu', cfg_options: Optional[Dict] = None,
                   inference_mode: bool = True):
    """The predictor for ``checkpoint``: an ONNX Runtime session for a ``.onnx`` file
    (:class:`~swin_dense.inference.onnx_predictor.OnnxPredictor`), else a :class:`Predictor`, in
    PyTorch inference mode (:mod:`.inference_mode`) unless ``inference_mode`` is False.

    Both have the same public surface (``task``, ``classes``, ``dataset_meta``, ``classes_source``,
    ``unused_weights``, ``model``, ``decode``, ``read``, ``prepare``, ``bucket_key``, ``predict``,
    ``draw``, ``visualizer``, ``describe``); the batch tool and the server build predictors only here.
    """
    if checkpoint.lower().endswith('.onnx'):
        from .onnx_predictor import OnnxPredictor
        return OnnxPredictor(config, checkpoint, device=device, cfg_options=cfg_options)
    return Predictor(config, checkpoint, device=device, cfg_options=cfg_options, inference_mode=inference_mode)


__all__ = ['load_predictor']
