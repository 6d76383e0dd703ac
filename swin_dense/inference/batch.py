"""Batch inference over an image, a folder or a list file, resumable: :func:`run_batch`.

Outputs under ``OUT`` (``STEM`` = the image's path relative to INPUT, without extension)::

    detection                                   segmentation
    results.json   COCO results (bbox + segm)   labels/STEM.png     class index per pixel
    mapping.json   image ids <-> files,         overlays/STEM.png   prediction over the image
                   category ids <-> classes     mapping.json        files, classes, palette
    vis/STEM.png   drawn prediction
    shards/STEM.json  per-image results
    sources/STEM.json  input file of the outputs sources/STEM.json  input file of the outputs
    run.json       what produced the outputs (config / checkpoint hashes)
    summary.json   images done / skipped (with reasons) / time

``STEM`` is the image's path relative to INPUT without extension where that names no other
image's output, else the whole relative path (:func:`~swin_dense.inference.inputs.output_stems`).

Resuming: every per-image output is written atomically (temporary file + ``os.replace``), the
image's *marker* (its shard, or its label PNG) last, so an image is done exactly when its marker
exists, and no half-written file is ever taken for a result. Before the marker, ``sources/STEM.json``
records the input file it was made from (absolute path, size, modification time): an image whose
input is not that file any more (another folder with the same names, an edited image) is computed
again. Images are processed in fixed
batches of consecutive inputs (the same batches in every run of the same command); a batch whose
images are all done is skipped, any other is run again in full and only its missing outputs are
written, so a resumed run produces exactly the results of an uninterrupted one. ``results.json``
is assembled from the shards at the end.

Batches are formed as in ``tools/test.py``'s dataloader: consecutive images, padded to the largest
of the batch (detection); segmentation batches group images of one size (mmseg needs that).

Only regular files are read, at most ``max_file_bytes`` each, and images of more than
``max_pixels`` are refused from their header. Any failure on one image (reading, decoding, the
pipeline, the model, drawing, writing) skips that image, lists it with the reason, and the run goes
on.
"""
import hashlib
import json
import os
import os.path as osp
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..engine.atomic_backend import atomic_write, remove_partial_files
from .formats import atomic_write_json, coco_category_ids, coco_results, det_instances, encode_png, seg_label_map
from .inputs import MAX_FILE_BYTES, ImageError, InputImage, chunks, collect_inputs, output_stems

#: The default per-image pixel limit of ``tools/infer.py`` (width x height; docs/inference.md, "Limits").
MAX_PIXELS = 25_000_000


class BatchError(RuntimeError):
    """The run cannot start (the message says why)."""


@dataclass
class Summary:
    images: int = 0
    done_now: int = 0
    done_before: int = 0
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0
    outputs: Dict[str, str] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def done(self) -> int:
        return self.done_now + self.done_before

    @property
    def images_per_s(self) -> float:
        return self.done_now / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> Dict[str, Any]:
        return dict(images=self.images, done=self.done, done_now=self.done_now, done_before=self.done_before,
                    skipped=[dict(path=p, reason=r) for p, r in self.skipped], seconds=round(self.seconds, 3),
                    images_per_s=round(self.images_per_s, 3), outputs=self.outputs, interrupted=self.interrupted)

    def text(self) -> str:
        lines = [f'{self.images} images: {self.done} done ({self.done_now} now, {self.done_before} from an earlier '
                 f'run), {len(self.skipped)} skipped, {self.seconds:.1f} s ({self.images_per_s:.2f} images/s)']
        if self.skipped:
            lines.append('skipped (unreadable, corrupt or failed):')
            lines += [f'  {p}: {r}' for p, r in self.skipped]
        if self.interrupted:
            lines.append('interrupted: run the same command again to continue where it stopped')
        for name, path in self.outputs.items():
            lines.append(f'{name}: {path}')
        return '\n'.join(lines)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def fingerprint(config: str, checkpoint: str, cfg_options: Optional[Dict]) -> Dict[str, Any]:
    """What decides the results: the config text, the overrides and the checkpoint bytes."""
    return dict(config=osp.abspath(config), config_sha256=_sha256(config),
                cfg_options=json.loads(json.dumps(cfg_options or {}, sort_keys=True, default=str)),
                checkpoint=osp.abspath(checkpoint), checkpoint_sha256=_sha256(checkpoint))


def _check_fingerprint(out: str, fp: Dict[str, Any]) -> bool:
    """Raise if ``out`` holds another run's outputs; True if it holds this run's."""
    path = osp.join(out, 'run.json')
    if osp.isfile(path):
        try:
            with open(path) as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict):
            diff = [k for k in ('config_sha256', 'cfg_options', 'checkpoint_sha256') if old.get(k) != fp[k]]
            if diff:
                what = ', '.join({'config_sha256': 'the config', 'cfg_options': '--cfg-options',
                                  'checkpoint_sha256': 'the checkpoint'}[k] for k in diff)
                raise BatchError(f'--out {out!r} holds outputs of another run ({what} differ): use another --out, '
                                 f'or delete {out!r} to start over')
            return True
    return False


def check_writable(out: str) -> None:
    """Raise :class:`BatchError` unless ``out`` (or, while it does not exist, its nearest existing
    parent) is a folder this process can create files in. Creates nothing that stays."""
    probe = osp.abspath(out)
    while not osp.exists(probe):
        probe = osp.dirname(probe)
    if not osp.isdir(probe):
        raise BatchError(f'--out {out!r} cannot be created: {probe!r} is a file, not a folder')
    try:
        os.rmdir(tempfile.mkdtemp(prefix='.swin_dense_probe_', dir=probe))
    except OSError as e:
        raise BatchError(f'--out {out!r} is not writable ({probe!r}: {e.strerror or e}): choose another folder, '
                         'or fix its permissions') from None


def _remove_stale_temps(out: str) -> int:
    """Delete the temporary files of writes a crash interrupted anywhere under ``out``; how many."""
    return sum(len(remove_partial_files(root)) for root, _, _ in os.walk(out))


def image_ids(images: Sequence[InputImage], ann_images: Optional[Sequence[Dict]] = None) -> List[int]:
    """COCO image id per input.

    With an annotation file: the id of the image whose ``file_name`` is the input's key or file
    name (others get new ids above the largest). Otherwise the file name itself when every file
    name is a distinct integer (``000000139.jpg`` -> 139, as in COCO), else 1..N in input order.
    """
    if ann_images:
        by_name: Dict[str, int] = {}
        for im in ann_images:
            by_name.setdefault(im['file_name'], int(im['id']))
            by_name.setdefault(osp.basename(im['file_name']), int(im['id']))
        next_id = max(by_name.values(), default=0) + 1
        ids = []
        for im in images:
            found = by_name.get(im.key, by_name.get(osp.basename(im.key)))
            if found is None:
                found, next_id = next_id, next_id + 1
            ids.append(found)
        return ids
    stems = [osp.splitext(osp.basename(im.key))[0] for im in images]
    if all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems):
        return [int(s) for s in stems]
    return list(range(1, len(images) + 1))


def source_record(image: InputImage) -> Optional[Dict[str, Any]]:
    """What identifies the input file now (absolute path, size, modification time); None if it is gone."""
    try:
        st = os.stat(image.path)
    except OSError:
        return None
    return dict(path=osp.abspath(image.path), size=st.st_size, mtime_ns=st.st_mtime_ns)


class _Outputs:
    """Where each image's outputs go, and whether they were made from the image as it is now."""

    def __init__(self, out: str, task: str, stems: Sequence[str], vis: bool):
        self.out, self.task, self.stems, self.vis = out, task, stems, vis

    def marker(self, i: int) -> str:
        if self.task == 'det':
            return osp.join(self.out, 'shards', self.stems[i] + '.json')
        return osp.join(self.out, 'labels', self.stems[i] + '.png')

    def picture(self, i: int) -> str:
        return osp.join(self.out, 'vis' if self.task == 'det' else 'overlays', self.stems[i] + '.png')

    def source(self, i: int) -> str:
        return osp.join(self.out, 'sources', self.stems[i] + '.json')

    def written(self, i: int) -> bool:
        return osp.isfile(self.marker(i)) and (not self.vis or osp.isfile(self.picture(i)))

    def made_from(self, i: int, image: InputImage) -> bool:
        """The outputs' source record names this input file with its current size and modification time."""
        try:
            with open(self.source(i)) as f:
                return json.load(f) == source_record(image)
        except (OSError, ValueError):
            return False


def run_batch(config: str, checkpoint: str, input_arg: str, out: str, batch_size: int = 1, device: str = 'cpu',
              score_thr: float = 0.3, vis: bool = True, cfg_options: Optional[Dict] = None,
              ann_file: Optional[str] = None, progress: bool = True, log=None, max_pixels: Optional[int] = MAX_PIXELS,
              max_file_bytes: int = MAX_FILE_BYTES, inference_mode: bool = True) -> Summary:
    """Run a detector / segmentor over INPUT and write the outputs described in the module doc.

    Args:
        max_pixels: images with more pixels (width x height, from the header) are skipped and listed;
            None: no limit.
        max_file_bytes: larger files are skipped and listed.
        inference_mode: PyTorch checkpoints on the CPU run in inference mode (:mod:`.inference_mode`).

    Raises:
        swin_dense.inference.inputs.InputError: INPUT names no images.
        swin_dense.inference.predictor.PredictorError: config / checkpoint missing or not a pair.
        BatchError: ``out`` holds another run's outputs, or bad arguments.
    """
    from .loading import load_predictor

    log = log or (lambda msg: print(f'[infer] {msg}', file=sys.stderr, flush=True))
    if batch_size < 1:
        raise BatchError(f'--batch-size must be >= 1, got {batch_size}')
    images = collect_inputs(input_arg, exclude=[out])
    stems = output_stems(images)
    ann = None
    if ann_file is not None:
        if not osp.isfile(ann_file):
            raise BatchError(f'--ann-file {ann_file!r} not found')
        with open(ann_file) as f:
            ann = json.load(f)
    if not osp.isfile(config):
        raise BatchError(f'config {config!r} not found')
    if not osp.isfile(checkpoint):
        raise BatchError(f'checkpoint {checkpoint!r} not found')
    fp = fingerprint(config, checkpoint, cfg_options)
    same_run = osp.isdir(out) and _check_fingerprint(out, fp)
    check_writable(out)

    t_load = time.time()
    predictor = load_predictor(config, checkpoint, device=device, cfg_options=cfg_options,
                               inference_mode=inference_mode)
    os.makedirs(out, exist_ok=True)
    if not same_run:
        atomic_write_json(osp.join(out, 'run.json'), fp, indent=1)
    _remove_stale_temps(out)
    log(f'{predictor.describe()["task"]} model {type(predictor.model).__name__} with {len(predictor.classes)} classes '
        f'(from {predictor.classes_source}) loaded in {time.time() - t_load:.1f} s ({predictor.runtime_summary()}); '
        f'{len(images)} images')
    if predictor.unused_weights:
        log(f'warning: {len(predictor.unused_weights)} checkpoint weights are not used by the model '
            f'(e.g. {predictor.unused_weights[0]})')
    task = predictor.task
    outputs = _Outputs(out, task, stems, vis)
    written = [outputs.written(i) for i in range(len(images))]
    done = [w and outputs.made_from(i, im) for i, (w, im) in enumerate(zip(written, images))]
    summary = Summary(images=len(images), done_before=sum(done))
    if summary.done_before:
        log(f'{summary.done_before} of {len(images)} images already done in {out}: continuing')
    changed = sum(w and not d for w, d in zip(written, done))
    if changed:
        log(f'{changed} images have outputs in {out} made from another file of that name, or from the file before '
            'it changed (size or modification time): computing them again')

    from tqdm import tqdm
    bar = tqdm(total=len(images), initial=summary.done_before, unit='img', desc='infer', file=sys.stderr,
               dynamic_ncols=True, mininterval=0.5, disable=not progress)
    failed: Dict[int, str] = {}
    t0 = time.time()
    try:
        for idx in chunks(list(range(len(images))), batch_size):
            pending = [i for i in idx if not done[i]]
            if not pending:
                continue
            _run_chunk(predictor, images, idx, pending, outputs, score_thr, failed, bar, max_pixels, max_file_bytes)
            for i in pending:
                if i not in failed:
                    done[i] = True
                    summary.done_now += 1
            bar.update(len(pending))
            if failed:
                bar.set_postfix(skipped=len(failed), refresh=False)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()
    summary.seconds = time.time() - t0
    summary.skipped = [(images[i].path, failed[i]) for i in sorted(failed)]

    if not summary.interrupted:
        if task == 'det':
            summary.outputs.update(_write_coco(out, predictor, images, stems, outputs, done, ann))
        else:
            summary.outputs.update(_write_seg_mapping(out, predictor, images, stems, outputs, done))
        if vis:
            summary.outputs['pictures'] = osp.join(out, 'vis' if task == 'det' else 'overlays')
    atomic_write_json(osp.join(out, 'summary.json'), summary.as_dict(), indent=1)
    log(summary.text())
    return summary


def _skip(failed: Dict[int, str], i: int, image: InputImage, reason: str, bar) -> None:
    failed[i] = reason
    bar.write(f'[infer] skipped {image.path}: {reason}', file=sys.stderr)


def _run_chunk(predictor, images: Sequence[InputImage], idx: Sequence[int], pending: Sequence[int],
               outputs: _Outputs, score_thr: float, failed: Dict[int, str], bar, max_pixels: Optional[int],
               max_file_bytes: int) -> None:
    """Decode and prepare every readable image of the batch, run it, write the pending images' outputs.

    A failure on one image, at any step, skips that image (recorded in ``failed``) and no other.
    """
    pending_set = set(pending)
    imgs, datas, members = {}, [], []
    for i in idx:
        try:
            source = source_record(images[i])
            img = predictor.read(images[i].path, max_pixels=max_pixels, max_bytes=max_file_bytes)
            datas.append(predictor.prepare(img))
        except ImageError as e:
            if i in pending_set:
                _skip(failed, i, images[i], e.message, bar)
            continue
        except Exception as e:  # noqa: BLE001  a pipeline error on one image must not stop the run
            if i in pending_set:
                _skip(failed, i, images[i], f'preprocessing failed ({type(e).__name__}: {e})', bar)
            continue
        members.append(i)
        imgs[i] = (img, source)
    if not any(i in pending_set for i in members):
        return
    try:
        samples = predictor.predict(datas)
    except Exception as e:  # noqa: BLE001  isolate the image that fails
        if len(datas) == 1:
            samples = [e]
        else:
            samples = []
            for d in datas:
                try:
                    samples.append(predictor.predict([d])[0])
                except Exception as e1:  # noqa: BLE001
                    samples.append(e1)
    for i, sample in zip(members, samples):
        if i not in pending_set:
            continue
        if isinstance(sample, Exception):
            _skip(failed, i, images[i], f'inference failed ({type(sample).__name__}: {sample})', bar)
            continue
        try:
            _write_outputs(predictor, images[i], outputs, i, *imgs[i], sample, score_thr)
        except Exception as e:  # noqa: BLE001  drawing or writing one image must not stop the run
            _skip(failed, i, images[i], f'writing its outputs failed ({type(e).__name__}: {e})', bar)


def _write_outputs(predictor, image: InputImage, outputs: _Outputs, i: int, img, source: Dict[str, Any], sample,
                   score_thr: float) -> None:
    """The picture, the source record, then the marker (last: its presence means done)."""
    if outputs.vis:
        atomic_write(outputs.picture(i), encode_png(predictor.draw(img, sample, score_thr)))
    atomic_write_json(outputs.source(i), source)
    if predictor.task == 'det':
        shard = dict(key=image.key, height=int(img.shape[0]), width=int(img.shape[1]),
                     instances=det_instances(sample, 0.0))
        atomic_write_json(outputs.marker(i), shard)
    else:
        atomic_write(outputs.marker(i), encode_png(seg_label_map(sample)))


def _write_coco(out: str, predictor, images, stems, outputs: _Outputs, done, ann) -> Dict[str, str]:
    cat_ids = coco_category_ids(predictor.classes, (ann or {}).get('categories'))
    ids = image_ids(images, (ann or {}).get('images'))
    results, mapping_images = [], []
    for i, im in enumerate(images):
        if not done[i]:
            continue
        with open(outputs.marker(i)) as f:
            shard = json.load(f)
        results.extend(coco_results(shard['instances'], ids[i], cat_ids))
        mapping_images.append(dict(id=ids[i], file_name=im.key, path=im.path, height=shard['height'],
                                   width=shard['width'], shard=osp.relpath(outputs.marker(i), out),
                                   **({'vis': osp.relpath(outputs.picture(i), out)} if outputs.vis else {})))
    mapping = dict(task='detection', images=mapping_images,
                   categories=[dict(id=c, name=n) for c, n in zip(cat_ids, predictor.classes)],
                   label_to_category_id={str(i): c for i, c in enumerate(cat_ids)})
    atomic_write_json(osp.join(out, 'results.json'), results)
    atomic_write_json(osp.join(out, 'mapping.json'), mapping, indent=1)
    return {'COCO results': osp.join(out, 'results.json'), 'image/category ids': osp.join(out, 'mapping.json')}


def _write_seg_mapping(out: str, predictor, images, stems, outputs: _Outputs, done) -> Dict[str, str]:
    entries = []
    for i, im in enumerate(images):
        if done[i]:
            entry = dict(file_name=im.key, path=im.path, label_png=osp.relpath(outputs.marker(i), out))
            if outputs.vis:
                entry['overlay_png'] = osp.relpath(outputs.picture(i), out)
            entries.append(entry)
    mapping = dict(task='segmentation', classes=list(predictor.classes),
                   palette=[list(p) for p in predictor.dataset_meta['palette']], images=entries)
    atomic_write_json(osp.join(out, 'mapping.json'), mapping, indent=1)
    return {'label PNGs': osp.join(out, 'labels'), 'files/classes': osp.join(out, 'mapping.json')}


__all__ = ['run_batch', 'Summary', 'BatchError', 'image_ids', 'fingerprint', 'check_writable', 'source_record',
           'MAX_PIXELS']
