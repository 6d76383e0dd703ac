"""The server's request and answers as pydantic models, for its OpenAPI schema (``/openapi.json``).

The app reads and checks bodies itself (size, depth and image limits come first); these models
describe what it accepts and returns, so that clients and fuzzers can work from the schema.
"""
from typing import Dict, List, Optional, Union

from pydantic import BaseModel, Field


class ScoreRequest(BaseModel):
    input_data: List[str] = Field(..., min_length=1,
                                  description='base64-encoded image files (jpg, png, bmp, tif, webp), or http(s) URLs '
                                              'when the server runs with --allow-urls')


class RLEMask(BaseModel):
    size: List[int] = Field(..., description='[height, width]')
    counts: str = Field(..., description='compressed COCO RLE')


class Instance(BaseModel):
    label: str
    label_id: int
    score: float
    box: List[float] = Field(..., description='[x1, y1, x2, y2] in pixels of the image')
    mask: Optional[RLEMask] = None


class LabelMap(BaseModel):
    height: int
    width: int
    classes: List[str]
    label_png: str = Field(..., description='base64 PNG of the class index of every pixel')


#: One entry per image: detected instances (detection) or a label map (segmentation).
ScoreResponse = List[Union[List[Instance], LabelMap]]


class ErrorBody(BaseModel):
    error: str = Field(..., description='a short slug: bad_base64, not_an_image, too_many_pixels, busy, ...')
    detail: str
    index: Optional[int] = Field(None, description='the image of input_data the error is about')


#: The error answers of POST /score (docs/inference.md lists every slug).
SCORE_ERRORS: Dict[int, str] = {
    400: 'malformed JSON, bad base64, no image, corrupt or unprocessable image, URL not allowed or not fetched',
    401: 'no or wrong API key (when the server has keys)',
    408: 'the body was not received within the body timeout',
    413: 'body, number of images, pixels of an image or of the request over the limit',
    415: 'Content-Type other than application/json',
    422: 'JSON without a non-empty input_data list of strings',
    503: 'queue or in-flight pixel budget full, or too many connections: retry later',
}


def score_openapi() -> Dict:
    """``openapi_extra`` and ``responses`` of the /score route."""
    return dict(
        openapi_extra={'requestBody': {'required': True, 'content': {
            'application/json': {'schema': ScoreRequest.model_json_schema()}}}},
        responses={status: {'model': ErrorBody, 'description': why} for status, why in SCORE_ERRORS.items()})


__all__ = ['ScoreRequest', 'ScoreResponse', 'Instance', 'LabelMap', 'RLEMask', 'ErrorBody', 'SCORE_ERRORS',
           'score_openapi']
