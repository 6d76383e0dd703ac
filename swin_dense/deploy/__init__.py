"""ONNX export of whole models (tools/export_onnx.py, docs/deploy.md): level 4, beside
swin_dense.inference, whose Predictor loads and checks the checkpoint to export."""
from .export import ONNX_NAME, ExportError, export_onnx
from .record import ExportRecord, ExportRecordError, SizePolicy, check_input_size, read_record

__all__ = ['export_onnx', 'ExportError', 'ONNX_NAME', 'ExportRecord', 'ExportRecordError', 'SizePolicy',
           'read_record', 'check_input_size']
