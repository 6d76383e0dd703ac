"""The export record: the JSON written beside ``model.onnx`` (``DIR/export.json``).

It holds what running the graph needs besides the graph: the task, the classes and palette, the
input normalisation (for reference: the predictor normalises with the config's data preprocessor),
the names of the graph's inputs and outputs, the size policy and the export settings.

Size policy (:class:`SizePolicy`): ``'fixed'`` graphs run at one (H, W) only; ``'dynamic'`` graphs run
at any (H, W) whose sides are at least ``min_side``: one backbone patch (graphs exported before the
window rule was traced recorded 257 or 513 px, the side below which a stage's window shrinks).
:func:`check_input_size` raises for any other size, so a graph is never run at a size it was not
exported for.
"""
import json
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

RECORD_NAME = 'export.json'
RECORD_VERSION = 1


class ExportRecordError(RuntimeError):
    """The export record is missing, unreadable, or forbids running the graph at a size."""


@dataclass
class SizePolicy:
    """Which input sizes (H, W), after the test pipeline and preprocessor, the graph was exported for.

    Attributes:
        kind: ``'fixed'`` (``shape`` only) or ``'dynamic'`` (any size with both sides >= ``min_side``).
        shape: the size the graph was traced at.
        min_side: ``'dynamic'``: the smallest side the graph runs at (:func:`.export.size_policy`).
    """
    kind: str
    shape: Tuple[int, int]
    min_side: int = 0

    def allows(self, height: int, width: int) -> bool:
        """Whether an (H, W) input may be run."""
        if self.kind == 'fixed':
            return (height, width) == tuple(self.shape)
        return min(height, width) >= self.min_side

    def describe(self) -> str:
        if self.kind == 'fixed':
            return f'fixed input size {self.shape[0]}x{self.shape[1]}'
        return f'dynamic input size, both sides >= {self.min_side} px'


@dataclass
class ExportRecord:
    """Everything ``model.onnx`` needs besides itself (see the module docstring)."""
    task: str
    config: str
    classes: List[str]
    palette: List[List[int]]
    mean: List[float]
    std: List[float]
    bgr_to_rgb: bool
    size_policy: SizePolicy
    input_names: List[str]
    output_names: List[str]
    exporter: Dict[str, Any] = field(default_factory=dict)
    version: int = RECORD_VERSION

    def save(self, out_dir: str) -> str:
        """Write ``out_dir/export.json``; returns its path."""
        path = osp.join(out_dir, RECORD_NAME)
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(asdict(self), f, indent=2)
        return path


def read_record(onnx_path: str) -> ExportRecord:
    """The record beside an exported ``.onnx`` file.

    Raises:
        ExportRecordError: no ``export.json`` beside the file, or it is not a record of this version.
    """
    path = osp.join(osp.dirname(osp.abspath(onnx_path)), RECORD_NAME)
    if not osp.isfile(path):
        raise ExportRecordError(f'{onnx_path!r} has no {RECORD_NAME} beside it: keep the directory that '
                                'tools/export_onnx.py wrote (model.onnx and export.json) together')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        if data.get('version') != RECORD_VERSION:
            raise ValueError(f'version {data.get("version")!r}, expected {RECORD_VERSION}')
        policy = data.pop('size_policy')
        data['size_policy'] = SizePolicy(policy['kind'], tuple(policy['shape']), int(policy.get('min_side', 0)))
        return ExportRecord(**data)
    except (ValueError, KeyError, TypeError) as e:
        raise ExportRecordError(f'{path!r} is not an export record of this version ({type(e).__name__}: {e}); '
                                're-export with tools/export_onnx.py') from None


def frozen_test_cfg(cfg: Any) -> Dict[str, Any]:
    """A detector config's ``model.test_cfg`` as it reads back from ``export.json`` (the graph holds it
    as constants: score threshold, NMS, proposal and detection counts)."""
    return json.loads(json.dumps(cfg.model.test_cfg.to_dict()))


def check_input_size(policy: SizePolicy, height: int, width: int, hint: Optional[str] = None) -> None:
    """Raise :class:`ExportRecordError` unless the graph was exported for an (H, W) input."""
    if not policy.allows(height, width):
        raise ExportRecordError(
            f'input of {height}x{width} px is outside the exported graph\'s {policy.describe()}; '
            + (hint or 're-export with tools/export_onnx.py --shape H W for this size'))
