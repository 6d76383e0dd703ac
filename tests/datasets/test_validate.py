"""Bad dataset input fails up front with the file named (swin_dense.datasets), and odd-but-valid images just work.

Tiny datasets (2-5 images of 64 px) are written in tmp_path: COCO-style by
swin_dense.sample_data.coco, ADE20K-style by hand. One test per bad-input case asserts a
DatasetError whose message names the file; the good variants (grayscale, RGBA, 16-bit) go through
the sample configs' real pipelines and models; tools/train.py is run as a subprocess to show a
missing image failing before any iteration, and --skip-data-check skipping the check.
"""
import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

from mmengine.config import Config  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.registry import DATASETS, HOOKS, MODELS, DefaultScope  # noqa: E402

from swin_dense.datasets import DatasetError, ValidateDatasetHook, validate_config, validate_dataset  # noqa: E402
from swin_dense.cli import merge_cfg_options, setup_scope  # noqa: E402
from swin_dense.sample_data.coco import CLASSES, make_coco_sample  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DET_CONFIG = os.path.join(ROOT, 'configs', 'sample', 'cascade_swinv2_t_sample.py')
SEG_CONFIG = os.path.join(ROOT, 'configs', 'sample', 'upernet_swinv2_t_sample.py')


@pytest.fixture(scope='module', autouse=True)
def registries():
    from mmdet.utils import register_all_modules as register_det
    from mmseg.utils import register_all_modules as register_seg
    register_det(init_default_scope=False)
    register_seg(init_default_scope=False)


# ------------------------------------------------------------------------------------------ tiny datasets
@pytest.fixture
def coco(tmp_path):
    """A COCO-style root with 4 training and 2 validation images of 64x64, each with 1-2 objects."""
    root = str(tmp_path / 'coco') + '/'
    make_coco_sample(root, seed=0, num_train=4, num_val=2, min_side=64, max_side=64, max_objects=2,
                     min_obj=8, max_obj=24)
    return root


def coco_cfg(root, split='train'):
    return dict(type='CocoDataset', data_root=root, ann_file=f'annotations/instances_{split}2017.json',
                data_prefix=dict(img=f'{split}2017/'), metainfo=dict(classes=CLASSES), test_mode=split != 'train',
                filter_cfg=dict(filter_empty_gt=True, min_size=32) if split == 'train' else None, pipeline=[])


def check_coco(root, split='train', **kwargs):
    return validate_dataset(coco_cfg(root, split), name=split, scope='mmdet', progress=False, **kwargs)


def ann_path(root, split='train'):
    return os.path.join(root, 'annotations', f'instances_{split}2017.json')


def edit_json(root, edit, split='train'):
    with open(ann_path(root, split)) as f:
        data = json.load(f)
    edit(data)
    with open(ann_path(root, split), 'w') as f:
        json.dump(data, f)
    return data


def first_image(root, split='train'):
    with open(ann_path(root, split)) as f:
        name = json.load(f)['images'][0]['file_name']
    return os.path.join(root, f'{split}2017', name)


def write_ade(root, count=3, size=(64, 64)):
    """An ADE20K-style root: images/training/*.jpg with annotations/training/*.png labels 0..5."""
    rng = np.random.default_rng(0)
    for sub in ('images/training', 'annotations/training'):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(
            os.path.join(root, 'images/training', f'ADE_train_{i:08d}.jpg'))
        Image.fromarray(rng.integers(0, 6, size, dtype=np.uint8)).save(
            os.path.join(root, 'annotations/training', f'ADE_train_{i:08d}.png'))
    return root


@pytest.fixture
def ade(tmp_path):
    return write_ade(str(tmp_path / 'ade'))


def check_ade(root, **kwargs):
    cfg = dict(type='ADE20KDataset', data_root=root, reduce_zero_label=True, pipeline=[],
               data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'), **kwargs)
    return validate_dataset(cfg, name='train', scope='mmseg', progress=False)


def raises_naming(path, call, *fragments):
    """``call()`` raises a DatasetError whose message names ``path`` and contains ``fragments``."""
    with pytest.raises(DatasetError) as info:
        call()
    message = str(info.value)
    assert path in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert 'Fix:' in message, message
    return info.value


# ------------------------------------------------------------------------------------------ good data
def test_good_datasets_pass_with_counts(coco, ade):
    for mode in ('exists', 'header', 'decode'):
        report = check_coco(coco, mode=mode)
        assert (report.num_images, report.num_empty, report.num_filtered) == (4, 0, 0)
    assert check_coco(coco, 'val').num_images == 2
    report = check_ade(ade)
    assert (report.num_images, report.num_empty) == (3, 0)
    assert 'train: 3 images, 0 without annotations' in report.summary()


# ------------------------------------------------------------------------------------------ image files
def test_missing_image(coco):
    path = first_image(coco)
    os.remove(path)
    error = raises_naming(path, lambda: check_coco(coco), 'file does not exist', '1 of its files')
    assert error.problems == [(path, 'file does not exist')]


@pytest.mark.parametrize('damage', ['truncated_jpeg', 'random_bytes', 'empty_file', 'truncated_png'])
def test_corrupt_image(coco, damage):
    path = first_image(coco)
    with open(path, 'rb') as f:
        data = f.read()
    if damage == 'truncated_jpeg':
        data = data[:len(data) // 2]
    elif damage == 'random_bytes':
        data = np.random.default_rng(0).bytes(len(data))
    elif damage == 'empty_file':
        data = b''
    else:  # a PNG (by content; the name says .jpg) cut short
        ok, png = cv2.imencode('.png', cv2.imread(path))
        data = png.tobytes()[:len(png) // 2]
    with open(path, 'wb') as f:
        f.write(data)
    reason = {'truncated_jpeg': 'truncated', 'random_bytes': 'not an image', 'empty_file': 'empty',
              'truncated_png': 'truncated'}[damage]
    raises_naming(path, lambda: check_coco(coco), reason)
    if damage != 'empty_file':  # the cheapest mode only looks at the file system
        assert check_coco(coco, mode='exists').num_images == 4


def test_errors_list_a_bounded_number_of_files(coco):
    images = sorted(os.listdir(os.path.join(coco, 'train2017')))
    for name in images:
        os.remove(os.path.join(coco, 'train2017', name))
    error = raises_naming(os.path.join(coco, 'train2017', images[0]), lambda: check_coco(coco, max_listed=2),
                          '... and 2 more (4 in all)')
    assert len(error.problems) == 4


def test_image_size_differs_from_annotation(coco):
    edit_json(coco, lambda data: data['images'][0].update(width=80))
    raises_naming(first_image(coco), lambda: check_coco(coco), 'image is 64x64', 'annotation says 80x64')


# ------------------------------------------------------------------------------------------ COCO JSON
def test_annotation_file_missing(coco):
    os.remove(ann_path(coco))
    raises_naming(ann_path(coco), lambda: check_coco(coco), 'FileNotFoundError', 'data_root')


def test_annotation_file_not_json(coco):
    with open(ann_path(coco), 'w') as f:
        f.write('{"images": [')  # an interrupted write
    raises_naming(ann_path(coco), lambda: check_coco(coco), 'JSONDecodeError', 'not valid JSON')


@pytest.mark.parametrize('key', ['images', 'annotations', 'categories'])
def test_annotation_file_without_top_level_list(coco, key):
    edit_json(coco, lambda data: data.pop(key))
    raises_naming(ann_path(coco), lambda: check_coco(coco), f'no {key} list', 'not a COCO annotation file')


def test_image_info_file_without_annotations_is_fine_in_test_mode(coco):
    edit_json(coco, lambda data: data.pop('annotations'), split='val')  # like COCO test-dev's image_info file
    report = check_coco(coco, 'val')
    assert (report.num_images, report.num_empty) == (2, 2)


def test_annotation_refers_to_unknown_image(coco):
    data = edit_json(coco, lambda data: data['annotations'][0].update(image_id=999))
    error = raises_naming(ann_path(coco), lambda: check_coco(coco), 'image_id 999', 'refer to images that are not')
    assert error.problems == [(f'annotation id {data["annotations"][0]["id"]}',
                               'image_id 999 is not an image of the file')]


def test_image_entry_without_file_name(coco):
    edit_json(coco, lambda data: data['images'][1].pop('file_name'))
    raises_naming(ann_path(coco), lambda: check_coco(coco), 'missing file_name')


# ------------------------------------------------------------------------------------------ empty images
def _drop_annotations_of(image_ids):
    def edit(data):
        data['annotations'] = [a for a in data['annotations'] if a['image_id'] not in image_ids]
    return edit


def test_images_without_annotations_are_counted(coco):
    with open(ann_path(coco)) as f:
        first_id = json.load(f)['images'][0]['id']
    edit_json(coco, _drop_annotations_of({first_id}))
    report = check_coco(coco)  # training: filter_empty_gt removes it
    assert (report.num_images, report.num_empty, report.num_filtered) == (3, 1, 1)
    assert '1 without annotations (1 removed by filter_cfg)' in report.summary()

    with open(ann_path(coco, 'val')) as f:
        val_id = json.load(f)['images'][0]['id']
    edit_json(coco, _drop_annotations_of({val_id}), split='val')
    report = check_coco(coco, 'val')  # evaluation keeps it
    assert (report.num_images, report.num_empty, report.num_filtered) == (2, 1, 0)


def test_training_set_without_any_annotation(coco):
    edit_json(coco, lambda data: data.update(annotations=[]))
    raises_naming(ann_path(coco), lambda: check_coco(coco), 'no annotated image', 'filter_empty_gt removed them',
                  'metainfo classes')


def test_training_classes_not_in_the_annotation_file(coco):
    cfg = coco_cfg(coco)
    cfg['metainfo'] = dict(classes=('person', 'car'))
    raises_naming(ann_path(coco), lambda: validate_dataset(cfg, scope='mmdet', progress=False),
                  "classes ('person', 'car')")


# ------------------------------------------------------------------------------------------ ADE-style
def test_label_map_missing(ade):
    path = os.path.join(ade, 'annotations/training/ADE_train_00000001.png')
    os.remove(path)
    raises_naming(path, lambda: check_ade(ade), 'file does not exist')


def test_label_map_of_another_size(ade):
    path = os.path.join(ade, 'annotations/training/ADE_train_00000002.png')
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(path)
    raises_naming(path, lambda: check_ade(ade), 'label map is 64x48', 'ADE_train_00000002.jpg is 64x64')


def test_label_map_in_colour(ade):
    path = os.path.join(ade, 'annotations/training/ADE_train_00000000.png')
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(path)
    raises_naming(path, lambda: check_ade(ade), 'label map has 3 channels', 'single-channel')


def test_image_folder_without_images(tmp_path):
    root = str(tmp_path / 'ade')
    os.makedirs(os.path.join(root, 'images/training'))
    raises_naming(os.path.join(root, 'images/training'), lambda: check_ade(root), 'has no images')


# ------------------------------------------------------------------------------------------ wrappers, hook
def test_concat_dataset_checks_every_part(coco):
    cfg = dict(type='ConcatDataset', datasets=[coco_cfg(coco), coco_cfg(coco, 'val')])
    assert validate_dataset(cfg, scope='mmdet', progress=False).num_images == 6
    path = first_image(coco, 'val')
    os.remove(path)
    raises_naming(path, lambda: validate_dataset(cfg, scope='mmdet', progress=False), 'file does not exist')


def test_hook_is_registered_and_checks_built_datasets(coco):
    with DefaultScope.overwrite_default_scope('mmdet'):
        hook = HOOKS.build(dict(type='ValidateDatasetHook', mode='exists'))
        train = DATASETS.build(coco_cfg(coco))
        val = DATASETS.build(coco_cfg(coco, 'val'))
    assert isinstance(hook, ValidateDatasetHook)
    loop = lambda dataset: SimpleNamespace(dataloader=SimpleNamespace(dataset=dataset))  # noqa: E731
    runner = SimpleNamespace(train_loop=loop(train), val_loop=loop(val), test_loop=None,
                             logger=MMLogger.get_instance('validate_hook_test'))
    hook.before_train(runner)
    assert hook._checked == {'train', 'val'}
    os.remove(first_image(coco, 'val'))
    hook.before_val(runner)  # already checked in this run: not again
    fresh = ValidateDatasetHook(splits=('val',), mode='exists')
    raises_naming(first_image(coco, 'val'), lambda: fresh.before_val(runner), 'file does not exist')


# ------------------------------------------------------------------------------------------ what just works
def _variant_images():
    """(name, PIL image or 16-bit BGR array) of 64x64: grey, RGBA, palette, 16-bit grey, 16-bit colour, grey JPEG."""
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    return [('grey.png', Image.fromarray(rgb[..., 0])),
            ('rgba.png', Image.fromarray(np.dstack([rgb, rgb[..., :1]]))),
            ('palette.png', Image.fromarray(rgb).convert('P')),
            ('grey16.png', Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)),
            ('colour16.png', rgb.astype(np.uint16) * 257),
            ('grey.jpg', Image.fromarray(rgb[..., 1]))]


def _save(image, path):
    if isinstance(image, np.ndarray):
        assert cv2.imwrite(path, image)  # 16-bit colour PNG
    else:
        image.save(path)


def _variant_coco(root):
    for split in ('train', 'val'):
        os.makedirs(os.path.join(root, f'{split}2017'), exist_ok=True)
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    images, annotations = [], []
    for i, (name, image) in enumerate(_variant_images()):
        _save(image, os.path.join(root, 'train2017', name))
        images.append(dict(id=i + 1, file_name=name, height=64, width=64))
        annotations.append(dict(id=i + 1, image_id=i + 1, category_id=1 + i % 3, iscrowd=0, area=400.0,
                                bbox=[10.0, 12.0, 20.0, 20.0], segmentation=[[10, 12, 30, 12, 30, 32, 10, 32]]))
    data = dict(images=images, annotations=annotations,
                categories=[dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)])
    for split in ('train', 'val'):
        with open(os.path.join(root, 'annotations', f'instances_{split}2017.json'), 'w') as f:
            json.dump(data, f)


def _variant_ade(root):
    for sub in ('images/training', 'annotations/training'):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for name, image in _variant_images():
        stem = name.replace('.', '_')
        _save(image, os.path.join(root, 'images/training', stem + '.png'))  # a JPEG's bytes in a .png: by content
        Image.fromarray(np.random.default_rng(2).integers(0, 6, (64, 64), dtype=np.uint8)).save(
            os.path.join(root, 'annotations/training', stem + '.png'))


def _sample_cfg(config, data_root):
    cfg = Config.fromfile(config)
    merge_cfg_options(cfg, {'data_root': data_root})
    setup_scope(cfg)
    return cfg


@pytest.mark.parametrize('task', ['det', 'seg'])
def test_grey_rgba_and_16bit_images_load_as_8bit_colour_and_train(tmp_path, task):
    root = str(tmp_path / task) + '/'
    if task == 'det':
        _variant_coco(root)
        cfg = _sample_cfg(DET_CONFIG, root)
    else:
        _variant_ade(root)
        cfg = _sample_cfg(SEG_CONFIG, root)
        cfg.train_dataloader.dataset.img_suffix = '.png'
    report = validate_config(cfg, ('train',), mode='decode', progress=False)[0]
    assert report.num_images == 6

    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
        model = MODELS.build(cfg.model)
    load_image = dataset.pipeline.transforms[0]
    assert type(load_image).__name__ == 'LoadImageFromFile'
    for index in range(len(dataset)):
        loaded = load_image(dataset.get_data_info(index))
        assert loaded['img'].shape == (64, 64, 3) and loaded['img'].dtype == np.uint8, loaded['img_path']
    batch = pseudo_collate([dataset[i] for i in range(len(dataset))])  # the full training pipeline
    for inputs in batch['inputs']:
        assert inputs.shape[0] == 3 and inputs.dtype == torch.uint8
    torch.manual_seed(0)
    model.train()
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(v) for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()


# ------------------------------------------------------------------------------------------ training time
def test_image_corrupted_after_the_check_is_named_when_loaded(coco):
    cfg = _sample_cfg(DET_CONFIG, coco)
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
    path = dataset.get_data_info(0)['img_path']
    with open(path, 'wb') as f:
        f.write(b'not an image')
    with pytest.raises(Exception) as info:  # mmcv's LoadImageFromFile: AssertionError 'failed to load image: <path>'
        dataset[0]
    assert path in str(info.value)


# ------------------------------------------------------------------------------------------ tools/train.py
def _train(args, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''), OMP_NUM_THREADS='1',
               PYTHONWARNINGS='ignore')
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'train.py')] + args, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return proc, time.perf_counter() - start


def _logs(work_dir):
    text = ''
    for folder, _, files in os.walk(work_dir):
        text += ''.join(open(os.path.join(folder, f), errors='replace').read() for f in files if f.endswith('.log'))
    return text


@pytest.mark.e2e
def test_train_tool_fails_up_front_on_a_missing_image(coco, tmp_path):
    path = first_image(coco)
    os.remove(path)
    work_dir = str(tmp_path / 'work')
    proc, seconds = _train([DET_CONFIG, '--work-dir', work_dir, '--cfg-options', f'data_root={coco}',
                            'train_cfg.max_epochs=1'])
    assert proc.returncode != 0
    assert 'dataset check failed' in proc.stderr and path in proc.stderr, proc.stderr[-3000:]
    assert 'file does not exist' in proc.stderr and 'Fix:' in proc.stderr
    assert seconds < 60, seconds  # imports and the check (about 6 s); no model is built
    assert not os.path.exists(work_dir)  # the Runner was never built: no log, no checkpoint


@pytest.mark.e2e
def test_skip_data_check_and_the_hook_stop_before_iteration_one(coco, tmp_path):
    """--skip-data-check: the Runner is built; a config's ValidateDatasetHook still stops the run before iteration 1."""
    config = tmp_path / 'with_hook.py'
    config.write_text(f'_base_ = {DET_CONFIG!r}\ncustom_hooks = [dict(type="ValidateDatasetHook", mode="exists")]\n')
    path = first_image(coco)
    os.remove(path)
    work_dir = str(tmp_path / 'work')
    proc, _ = _train([str(config), '--skip-data-check', '--work-dir', work_dir, '--cfg-options',
                      f'data_root={coco}', 'train_cfg.max_epochs=1'])
    assert proc.returncode != 0
    assert 'dataset check failed' not in proc.stderr  # the up-front check did not run ...
    assert 'Distributed training' in _logs(work_dir) or 'Environment info' in _logs(work_dir)  # ... the Runner did
    assert 'DatasetError' in proc.stderr and path in proc.stderr, proc.stderr[-3000:]  # the hook's error
    assert 'Epoch(train)' not in _logs(work_dir)
    assert not any(name.endswith('.pth') for _, _, files in os.walk(work_dir) for name in files)
