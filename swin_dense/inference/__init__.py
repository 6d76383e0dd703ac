"""Inference for users: batch over images / folders / lists (``tools/infer.py``) and an HTTP endpoint
(``tools/serve.py``). See docs/inference.md.

* :mod:`.inputs`    finding INPUT's images; decoding and checking image bytes and base64 strings
* :mod:`.predictor` :class:`Predictor`: config + checkpoint (checked) -> model, pipeline, visualizer
* :mod:`.formats`   instances / COCO results / label PNGs; atomic writes
* :mod:`.batch`     :func:`run_batch`, resumable, with progress and summary
* :mod:`.server`    the FastAPI app with request batching (imports fastapi lazily)
* :mod:`.client`    a standard-library client / load test for the server
"""
from .batch import BatchError, Summary, run_batch
from .inputs import ImageError, InputError, InputImage, collect_inputs, decode_base64, decode_image
from .predictor import CheckpointMismatchError, Predictor, PredictorError

__all__ = ['run_batch', 'Summary', 'BatchError', 'ImageError', 'InputError', 'InputImage', 'collect_inputs',
           'decode_base64', 'decode_image', 'Predictor', 'PredictorError', 'CheckpointMismatchError']
