"""swin_dense.inference.inputs: finding INPUT's images, decoding and refusing bad image bytes."""
import base64
import io
import os

import cv2
import mmcv
import numpy as np
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from swin_dense.inference.inputs import (ImageError, InputError, InputImage, collect_inputs, decode_base64,
                                         decode_image, image_size, is_url, output_stems, read_image)


def _jpeg(h=40, w=60, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    return cv2.imencode('.jpg', img)[1].tobytes()


def _png(h=40, w=60, channels=3, dtype=np.uint8):
    img = np.arange(h * w * channels, dtype=np.int64).reshape(h, w, channels) % 251
    return cv2.imencode('.png', img.astype(dtype).squeeze())[1].tobytes()


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)
    return str(path)


# --------------------------------------------------------------------------------------- INPUT listing
def test_folder_is_searched_recursively_sorted_with_extensions(tmp_path):
    root = tmp_path / 'in'
    for rel in ('b.jpg', 'a/2.PNG', 'a/1.jpeg', 'a/deep/x.webp', 'c.bmp', 'd.tif', 'e.tiff', 'notes.txt', 'f.gif'):
        _write(str(root / rel), b'x')
    out = root / 'out'  # an output folder inside INPUT is not searched
    _write(str(out / 'vis' / 'old.png'), b'x')
    images = collect_inputs(str(root), exclude=[str(out)])
    assert [im.key for im in images] == ['a/1.jpeg', 'a/2.PNG', 'a/deep/x.webp', 'b.jpg', 'c.bmp', 'd.tif', 'e.tiff']
    assert all(os.path.isabs(im.path) and os.path.isfile(im.path) for im in images)
    assert output_stems(images) == ['a/1', 'a/2', 'a/deep/x', 'b', 'c', 'd', 'e']


def test_single_image_and_list_file(tmp_path):
    img = _write(str(tmp_path / 'data' / 'one.jpg'), b'x')
    assert [(im.path, im.key) for im in collect_inputs(img)] == [(img, 'one.jpg')]
    _write(str(tmp_path / 'data' / 'sub' / 'two.png'), b'x')
    lst = tmp_path / 'data' / 'list.txt'
    lst.write_text(f'# comment\n\nsub/two.png\n{img}\n  one.jpg  \nmissing.jpg\n')
    images = collect_inputs(str(lst))
    # order kept, relative to the list's folder, duplicates dropped, missing entries kept (reported later)
    assert [im.key for im in images] == ['sub/two.png', 'one.jpg', 'missing.jpg']
    assert images[0].path == str(tmp_path / 'data' / 'sub' / 'two.png')


def test_empty_or_missing_input_fails_clearly(tmp_path):
    (tmp_path / 'empty').mkdir()
    _write(str(tmp_path / 'only_text' / 'a.txt'), b'hello')
    with pytest.raises(InputError, match='no images found'):
        collect_inputs(str(tmp_path / 'empty'))
    with pytest.raises(InputError, match='no images found'):
        collect_inputs(str(tmp_path / 'only_text'))
    lst = tmp_path / 'list.txt'
    lst.write_text('# nothing\n\n')
    with pytest.raises(InputError, match='names no images'):
        collect_inputs(str(lst))
    with pytest.raises(InputError, match='does not exist'):
        collect_inputs(str(tmp_path / 'nope'))
    binary = tmp_path / 'weights.bin'
    binary.write_bytes(b'\xff\xfe\x00\x81' * 10)
    with pytest.raises(InputError, match='neither an image'):
        collect_inputs(str(binary))


def test_output_names_do_not_collide():
    images = [InputImage('/x/a.jpg', 'a.jpg'), InputImage('/x/a.png', 'a.png'), InputImage('/x/b.jpg', 'b.jpg')]
    assert output_stems(images) == ['a.jpg', 'a.png', 'b']


def _output_files(names):
    """Every file the batch tool writes for these output names (shards/*.json and */*.png)."""
    return [n + ext for n in names for ext in ('.png', '.json')]


def _assert_distinct_and_no_file_is_a_folder(names):
    files = _output_files(names)
    assert len(set(files)) == len(files), names
    folders = {f.rsplit('/', 1)[0] for f in files if '/' in f}
    folders |= {p for f in folders for p in ('/'.join(f.split('/')[:k]) for k in range(1, f.count('/') + 1))}
    assert not folders & set(files), names


def test_adversarial_output_names_from_the_issue():
    keys = ['x.jpg', 'x.png', 'x.png.jpg', 'a.jpg', 'a.png/b.jpg', 'a.jpg.png/c.jpg']
    names = output_stems([InputImage('/in/' + k, k) for k in keys])
    _assert_distinct_and_no_file_is_a_folder(names)
    assert names[keys.index('x.png.jpg')] != 'x.png' or names[keys.index('x.png')] != 'x.png'


_part = st.text(alphabet='xa.', min_size=1, max_size=4).filter(lambda p: p not in ('.', '..'))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.builds(lambda d, f, e: '/'.join(d + [f + e]), st.lists(_part, max_size=2), _part,
                          st.sampled_from(['.jpg', '.png', '.png.jpg', '.jpg.png', ''])), unique=True, max_size=8))
def test_output_names_are_unique_for_any_inputs(keys):
    keys = [k for k in keys if k.lower().endswith(('.jpg', '.png'))]
    _assert_distinct_and_no_file_is_a_folder(output_stems([InputImage('/in/' + k, k) for k in keys]))


# ------------------------------------------------------------------------------------------- decoding
def test_decode_matches_mmcv_load(tmp_path):
    for data, name in ((_jpeg(), 'a.jpg'), (_png(), 'a.png')):
        path = _write(str(tmp_path / name), data)
        np.testing.assert_array_equal(read_image(path), mmcv.imread(path))
    gray = decode_image(_png(channels=1), 'gray.png')
    assert gray.shape == (40, 60, 3) and gray.dtype == np.uint8
    assert image_size(_png(), 'x') == (60, 40, 'PNG')


def _jpeg_with_comment(comment: bytes) -> bytes:
    """A JPEG whose comment segment holds ``comment`` (bytes an end-of-image marker search can mistake)."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(
        buffer, 'JPEG', comment=comment)
    return buffer.getvalue()


def test_padding_after_the_end_marker_is_accepted():
    """The dataset check's rule (swin_dense.datasets.files.has_end_marker): a marker outside the last
    1 KiB is fine when the image decodes in full."""
    padded = _jpeg(80, 80) + b'\0' * 4096
    assert decode_image(padded, 'padded.jpg').shape == (80, 80, 3)


@pytest.mark.parametrize('data,reason', [
    (b'', 'empty'),
    (b'this is not an image at all' * 10, 'not_an_image'),
    (_jpeg(80, 80)[:len(_jpeg(80, 80)) * 2 // 3], 'truncated'),
    (_png(80, 80)[:200], 'truncated'),
    (_jpeg_with_comment(b'\xff\xd9')[:-200], 'truncated'),
], ids=['zero_bytes', 'text', 'truncated_jpeg', 'truncated_png', 'truncated_jpeg_with_marker_bytes_inside'])
def test_bad_bytes_are_refused_by_name(data, reason):
    with pytest.raises(ImageError) as info:
        decode_image(data, 'pics/bad.jpg')
    assert info.value.reason == reason and info.value.status == 400
    assert str(info.value).startswith('pics/bad.jpg: ')


def test_missing_file_and_pixel_limit(tmp_path):
    with pytest.raises(ImageError) as info:
        read_image(str(tmp_path / 'gone.jpg'))
    assert info.value.reason == 'missing'
    data = _png(50, 60)
    assert decode_image(data, 'x', max_pixels=3000).shape == (50, 60, 3)
    with pytest.raises(ImageError) as info:
        decode_image(data, 'x', max_pixels=2999)
    assert info.value.reason == 'too_many_pixels' and info.value.status == 413
    assert '60x50' in str(info.value)


def test_only_regular_files_are_read_and_reads_are_bounded(tmp_path):
    zero = tmp_path / 'zero.png'
    os.symlink('/dev/zero', zero)
    with pytest.raises(ImageError) as info:
        read_image(str(zero))
    assert info.value.reason == 'not_a_file' and 'character device' in str(info.value)
    fifo = tmp_path / 'pipe.jpg'
    os.mkfifo(fifo)  # opening a FIFO for reading blocks until a writer comes: it must not be opened
    with pytest.raises(ImageError) as info:
        read_image(str(fifo))
    assert info.value.reason == 'not_a_file' and 'FIFO' in str(info.value)
    (tmp_path / 'folder.jpg').mkdir()
    with pytest.raises(ImageError) as info:
        read_image(str(tmp_path / 'folder.jpg'))
    assert info.value.reason == 'not_a_file'
    big = _write(str(tmp_path / 'big.png'), _png(50, 60))
    with pytest.raises(ImageError) as info:
        read_image(big, max_bytes=100)
    assert info.value.reason == 'too_large' and info.value.status == 413


def test_decompression_bomb_header_gives_too_many_pixels():
    from PIL import Image
    buffer = io.BytesIO()
    Image.new('1', (20000, 20000)).save(buffer, 'PNG')  # 400 Mpx, over Pillow's own bomb limit; about 50 KB
    with pytest.raises(ImageError) as info:
        decode_image(buffer.getvalue(), 'bomb.png', max_pixels=25_000_000)
    assert (info.value.reason, info.value.status) == ('too_many_pixels', 413)
    assert '400000000 pixels' in str(info.value) and 'Decompression' not in str(info.value)


def test_base64_and_urls():
    raw = _jpeg()
    std = base64.b64encode(raw).decode()
    assert decode_base64(std, 'x') == raw
    assert decode_base64(base64.urlsafe_b64encode(raw).decode(), 'x') == raw
    wrapped = '\n'.join(std[i:i + 76] for i in range(0, len(std), 76))  # as `base64` writes it
    assert decode_base64(wrapped, 'x') == raw
    assert decode_base64('data:image/jpeg;base64,' + std, 'x') == raw
    for bad in ('!!!!', 'abc', ''):
        with pytest.raises(ImageError) as info:
            decode_base64(bad, 'input_data[0]')
        assert info.value.reason == 'bad_base64'
    assert is_url('http://example.com/a.jpg') and is_url('  HTTPS://x/y') and is_url('file:///etc/passwd')
    assert is_url('s3://bucket/key.jpg') and not is_url(std) and not is_url('/9j/4AAQSkZJRg==')
