"""Every probe of a hostile or surprising input, each with the right result or one line.

- The decode cache never serves what the folder no longer holds: files moved between class folders, two class folders'
  names swapped, pixels rewritten with the size and modification time put back, a cache forged or copied from elsewhere.
- Bounded memory and time: a JPEG claiming 20000x20000 pixels, a PNG between 1x and 2x PIL's `MAX_IMAGE_PIXELS`, a
  1 GiB zero-filled tar member, a link to /dev/zero and a FIFO, each named like an image. These run in a child process
  whose address space is capped at 1 GiB above what its imports took (importing torch alone maps about 3.7 GB, so a
  flat 1 GB cap could not even import it), with a time guard that starts after the imports.
- `allconv-predict` with bad files among good ones; NaN and infinite images to `predict` and `test_dl`.
- Layouts: folders beside train/ (folders and archives), a class with a space in labels.txt.
"""
import gzip, io, os, tarfile, textwrap, time, zlib
from pathlib import Path
import pytest
import torch
from PIL import Image
from allconv_fastai.core import AllconvError
from allconv_fastai.data.sources import load_images, cache_path, decode_image_bytes
import forked
from conftest import image_folder, save_image

GUARD = 120   # seconds an operation may take, measured in the child after its imports: generous for a busy 2-core machine


def true_data(src:Path) -> dict:
    "{(class, file name): image} as the folder holds it now, decoded file by file."
    return {(p.parent.name, p.name): decode_image_bytes(p.read_bytes()) for p in sorted((src/'train').glob('*/*'))}

def assert_serves(s, src:Path):
    "`s` (a loaded `ImageSet`) holds exactly the folder's images, each with its folder's class."
    want = true_data(src)
    got = sorted((s.vocab[int(y)], tuple(x.flatten().tolist())) for x,y in zip(s.x, s.y))
    assert got == sorted((c, tuple(x.flatten().tolist())) for (c,_),x in want.items())

@pytest.fixture
def two_classes(tmp_path):
    "train/a and train/b with 10 images each, loaded once (so cached), then left more than a second to age."
    src = tmp_path/'src'
    image_folder(src, classes='ab', n_per=10, size=8)
    time.sleep(1.1)   # older than the cache's one-second "racy" window, so that only a changed stat can reveal a change
    s = load_images(src, cache_dir=tmp_path/'cache')
    assert not s.from_cache and load_images(src, cache_dir=tmp_path/'cache').from_cache
    return src, tmp_path/'cache'


# ------------------------------------------------------------------------------------------------ the decode cache

def test_cache_after_moving_3_files_between_class_folders_gives_true_labels(two_classes, capsys):
    src,cache = two_classes
    for i in range(3): os.rename(src/f'train/a/{i:04d}.png', src/f'train/b/moved{i}.png')
    s = load_images(src, cache_dir=cache)
    assert not s.from_cache and torch.bincount(s.y).tolist() == [7, 13]
    assert_serves(s, src)
    assert 'is stale: 3 files added, 3 files removed' in capsys.readouterr().out

def test_cache_after_swapping_two_class_folder_names_gives_true_labels(two_classes, capsys):
    src,cache = two_classes
    os.rename(src/'train/a', src/'train/tmp'); os.rename(src/'train/b', src/'train/a'); os.rename(src/'train/tmp', src/'train/b')
    s = load_images(src, cache_dir=cache)   # the same 20 paths, sizes and counts: only inodes and contents moved
    assert not s.from_cache
    assert_serves(s, src)
    assert 'is stale: 20 files changed' in capsys.readouterr().out

def test_cache_after_rewriting_pixels_with_size_and_mtime_kept_gives_true_pixels(tmp_path, capsys):
    src = tmp_path/'src'
    image_folder(src, classes='ab', n_per=10, size=8, ext='bmp')   # BMP: new pixels keep the file's size
    time.sleep(1.1)
    load_images(src, cache_dir=tmp_path/'cache')
    p = src/'train/a/0003.bmp'; st = p.stat()
    with open(p, 'r+b') as f: f.seek(-30, 2); f.write(bytes(range(30)))   # in place: same inode, same size
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))                       # and the old modification time
    assert (p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    s = load_images(src, cache_dir=tmp_path/'cache')
    assert not s.from_cache
    assert_serves(s, src)
    assert 'is stale: 1 file changed' in capsys.readouterr().out

def test_cache_unchanged_or_touched_folder_is_served(two_classes):
    src,cache = two_classes
    os.utime(src/'train/a/0000.png')   # a new mtime, the same bytes: still the same data
    assert load_images(src, cache_dir=cache).from_cache

def test_forged_or_copied_cache_is_not_served(two_classes, tmp_path, capsys):
    "A cache copied from another folder, one with the old signature-only metadata, and one with edited pixels: each rebuilt."
    from safetensors.torch import load_file, save_file
    src,cache = two_classes
    other = tmp_path/'other'
    image_folder(other, classes='ab', n_per=10, size=8, seed=7)
    load_images(other, cache_dir=cache)
    cp,ocp = cache_path(src, 'fine', cache),cache_path(other, 'fine', cache)
    cp.write_bytes(ocp.read_bytes())                            # another folder's cache, same counts, sizes and classes
    s = load_images(src, cache_dir=cache); assert not s.from_cache; assert_serves(s, src)
    t = load_file(str(cp))
    save_file(t, str(cp), metadata=dict(vocab='["a", "b"]', signature='dir:20:0:0', version='2', crc='0'))   # the old format
    s = load_images(src, cache_dir=cache); assert not s.from_cache; assert_serves(s, src)
    from safetensors import safe_open
    with safe_open(str(cp), 'pt') as f: meta = f.metadata()
    t = load_file(str(cp)); t['x'] = 255 - t['x']
    save_file(t, str(cp), metadata=meta)                        # right manifest, other pixels
    s = load_images(src, cache_dir=cache); assert not s.from_cache; assert_serves(s, src)
    out = capsys.readouterr().out
    assert 'files changed' in out and 'written by an older version' in out and 'damaged (checksum mismatch)' in out


# ------------------------------------------------------------------------------------------------ bounded memory and time

PRELUDE = '''
import os, resource, signal, sys, time
import allconv_fastai.cli
from allconv_fastai.core import AllconvError
from allconv_fastai.data.sources import load_images
vm = int(next(l for l in open('/proc/self/status') if l.startswith('VmSize:')).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (1<<30), vm + (1<<30)))   # 1 GiB more than the imports took
def too_slow(*a): raise TimeoutError('still running after {guard} s')
signal.signal(signal.SIGALRM, too_slow); signal.alarm({guard})
t0 = time.perf_counter()
try:
{body}
except AllconvError as e: print('refused:', e)
print(f'elapsed {{time.perf_counter() - t0:.1f}} s')
'''

def bounded(body:str, cwd) -> str:
    "Run `body` in a child process under the 1 GiB address-space cap and the time guard; its stdout and stderr."
    code = PRELUDE.format(guard=GUARD, body=textwrap.indent(textwrap.dedent(body).strip(), '    '))
    p = forked.run(['-W', 'ignore', '-c', code], cwd=cwd, timeout=GUARD + 300,
                   env={**os.environ, 'OMP_NUM_THREADS': '1', 'ALLCONV_CACHE': str(Path(cwd)/'cache')})
    out = p.stdout + p.stderr
    assert p.returncode == 0 and 'elapsed' in p.stdout, out[-2000:]
    assert float(p.stdout.split('elapsed ')[1].split()[0]) < GUARD, out[-2000:]
    return out

def load_in_child(src:Path) -> str:
    return bounded(f"s = load_images({str(src)!r}); print('loaded', sorted(s.vocab), len(s.y))", src.parent)

def jpeg_claiming(w:int, h:int) -> bytes:
    "A small JPEG whose header (SOF0) claims `w`x`h` pixels, as a crafted 20000x20000 JPEG does."
    buf = io.BytesIO(); Image.new('RGB', (16, 16), 'gray').save(buf, 'JPEG'); b = bytearray(buf.getvalue())
    i = b.index(b'\xff\xc0')
    b[i+5:i+9] = h.to_bytes(2, 'big') + w.to_bytes(2, 'big')
    return bytes(b)

def png_of(w:int, h:int) -> bytes:
    "A real grey PNG of `w`x`h` black pixels (about 100 KB for 10000x10000), compressed row by row."
    def chunk(t, d): return len(d).to_bytes(4, 'big') + t + d + zlib.crc32(t + d).to_bytes(4, 'big')
    z,row = zlib.compressobj(9),b'\0' * (w + 1)
    idat = b''.join(z.compress(row) for _ in range(h)) + z.flush()
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', w.to_bytes(4, 'big') + h.to_bytes(4, 'big') + bytes([8, 0, 0, 0, 0]))
            + chunk(b'IDAT', idat) + chunk(b'IEND', b''))

@pytest.fixture
def data(tmp_path):
    "train/a and train/b with 3 good images each."
    src = tmp_path/'data'
    image_folder(src, classes='ab', n_per=3, size=8)
    return src

def test_20000x20000_jpeg_is_refused_before_decoding(data):
    (data/'train/a/big.jpg').write_bytes(jpeg_claiming(20000, 20000))
    assert len((data/'train/a/big.jpg').read_bytes()) < 10_000
    out = load_in_child(data)
    assert 'refused: train/a/big.jpg is 400,000,000 pixels, more than the' in out, out[-2000:]   # PIL's open gives the count

def test_png_between_1x_and_2x_pil_limit_is_refused_not_decoded(data):
    from PIL import Image as I
    from allconv_fastai.data.sources import MAX_PIXELS
    assert I.MAX_IMAGE_PIXELS < 10000*10000 < 2*I.MAX_IMAGE_PIXELS and MAX_PIXELS < I.MAX_IMAGE_PIXELS
    (data/'train/b/bomb.png').write_bytes(png_of(10000, 10000))
    assert (data/'train/b/bomb.png').stat().st_size < 200_000
    out = load_in_child(data)
    assert 'refused: train/b/bomb.png is 10000x10000 = 100,000,000 pixels' in out, out[-2000:]

def _tar_with_big_member(path:Path, gz:bool):
    "An archive with good images under train/ and a 1 GiB zero-filled train/a/big.png, written sparse (tar) or in gzip members."
    good = io.BytesIO()
    with tarfile.open(fileobj=good, mode='w') as tf:
        for c in 'ab':
            for i in range(2):
                buf = io.BytesIO(); Image.new('RGB', (8, 8), (i*80, 0, 0)).save(buf, 'PNG')
                ti = tarfile.TarInfo(f'train/{c}/{i}.png'); ti.size = len(buf.getvalue()); tf.addfile(ti, io.BytesIO(buf.getvalue()))
        end = tf.offset   # where the end-of-archive blocks (and the padding to a record) start
    good = good.getvalue()[:end]
    big = tarfile.TarInfo('train/a/big.png'); big.size = 1 << 30
    head,tail = good + big.tobuf(), b'\0' * 1024 * 2
    with open(path, 'wb') as f:
        if gz:   # a gzip file may be many gzip members; the same 1 MiB of zeros, compressed once, written 1024 times
            zeros = gzip.compress(b'\0' * (1 << 20), 1)
            f.write(gzip.compress(head, 1))
            for _ in range(1024): f.write(zeros)
            f.write(gzip.compress(tail, 1))
        else:
            f.write(head); f.seek(len(head) + (1 << 30)); f.write(tail)

@pytest.mark.parametrize('kind', ['tar', 'tar.gz'])
def test_1gib_zero_filled_tar_member_is_refused_unread(tmp_path, kind):
    arc = tmp_path/f'images.{kind}'
    _tar_with_big_member(arc, gz=kind == 'tar.gz')
    assert tarfile.open(arc).getmember('train/a/big.png').size == 1 << 30
    out = load_in_child(arc)
    assert 'train/a/big.png is 1.0 GiB, more than the 256 MiB one file may have' in out, out[-2000:]

def test_symlink_to_dev_zero_named_png_is_skipped_with_a_line(data):
    (data/'train/a/x.png').symlink_to('/dev/zero')
    out = load_in_child(data)
    assert f"Skipping {data/'train/a/x.png'}: a character device, not a regular file." in out, out[-2000:]
    assert "loaded ['a', 'b'] 6" in out

def test_fifo_named_png_is_skipped_with_a_line(data):
    os.mkfifo(data/'train/b/pipe.png')
    out = load_in_child(data)
    assert f"Skipping {data/'train/b/pipe.png'}: a named pipe (FIFO), not a regular file." in out, out[-2000:]
    assert "loaded ['a', 'b'] 6" in out


# ------------------------------------------------------------------------------------------------ predict

def test_predict_bad_files_each_one_error_line_and_good_ones_classified(tmp_path):
    "`allconv-predict pretrained big.jpg bomb.png pipe.png zero.png good.png`, under the same cap."
    from allconv_fastai.pretrained import pretrained_names
    if not pretrained_names(): pytest.skip('no shipped weights in this installation')
    (tmp_path/'big.jpg').write_bytes(jpeg_claiming(20000, 20000))
    (tmp_path/'bomb.png').write_bytes(png_of(10000, 10000))
    os.mkfifo(tmp_path/'pipe.png'); (tmp_path/'zero.png').symlink_to('/dev/zero')
    save_image(tmp_path/'good.png', torch.randint(0, 256, (3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8))
    out = bounded("""
        rc = allconv_fastai.cli.predict_main(['pretrained', 'big.jpg', 'bomb.png', 'pipe.png', 'zero.png', 'good.png'])
        print('rc', rc)""", tmp_path)
    errs = [l for l in out.splitlines() if l.startswith('error: ')]
    assert len(errs) == 4 and 'rc 1' in out, out[-3000:]
    assert 'big.jpg is 400,000,000 pixels' in errs[0] and 'bomb.png is 10000x10000' in errs[1]
    assert 'pipe.png is a named pipe' in errs[2] and 'zero.png is a character device' in errs[3]
    rows = [l for l in out.splitlines() if l.startswith('good.png')]
    assert len(rows) == 1 and '%' in rows[0], out[-3000:]

def test_nan_and_inf_images_are_refused_by_predict_and_test_dl():
    from fastai.learner import Learner
    from allconv_fastai.data.loaders import tensor_dls
    x,y = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8),torch.arange(8) % 2
    dls = tensor_dls(x, y, ['a', 'b'], x, y, bs=4, device='cpu')
    from fastai.losses import CrossEntropyLossFlat
    learn = Learner(dls, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3*8*8, 2)), loss_func=CrossEntropyLossFlat())
    nan,inf = torch.full((3, 8, 8), float('nan')),torch.zeros(3, 8, 8)
    inf[0, 0, 0] = float('inf')
    with learn.no_bar():
        assert learn.predict(x[0])[0] in ('a', 'b')
        for bad in (nan, inf, -inf, nan.permute(1, 2, 0).numpy()):
            with pytest.raises(AllconvError, match='NaN or infinite'): learn.predict(bad)
    with pytest.raises(AllconvError, match='NaN or infinite'): dls.test_dl([x[0]/255, nan])
    with pytest.raises(AllconvError, match='NaN or infinite'): dls.test_dl(torch.stack([inf, inf]))


# ------------------------------------------------------------------------------------------------ layouts

@pytest.mark.parametrize('kind', ['folder', 'tar.gz'])
def test_folders_beside_train_are_ignored_with_a_line(tmp_path, capsys, kind):
    src = tmp_path/'data'
    image_folder(src, classes='ab', n_per=3, size=8)
    image_folder(src, classes='a', n_per=2, splits=('test',), size=8, seed=5)
    image_folder(src, classes=('junk',), n_per=4, splits=('other',), size=5, seed=9)   # another size too: were it read, the load would fail
    if kind == 'tar.gz':
        with tarfile.open(tmp_path/'data.tar.gz', 'w:gz') as tf: tf.add(src, 'data')
        src = tmp_path/'data.tar.gz'
    s = load_images(src, cache_dir=tmp_path/'cache')
    assert s.vocab == ['a', 'b'] and len(s.y) == 6 and len(s.y_test) == 2
    out = capsys.readouterr().out
    assert out.count('Ignoring 4 images outside train/, valid/ and test/') == 1 and 'other/junk' in out, out

def test_labels_txt_is_one_class_per_line_sea_lion(tmp_path):
    src = tmp_path/'data'
    image_folder(src, classes=('cat', 'sea lion'), n_per=3, size=8)
    (src/'labels.txt').write_text('cat\nsea lion\n')
    s = load_images(src, cache_dir=tmp_path/'cache')
    assert s.vocab == ['cat', 'sea lion'] and torch.bincount(s.y).tolist() == [3, 3]
    (src/'labels.txt').write_text('cat\nsea lion\nwalrus\n')   # a listed class without images is still refused
    with pytest.raises(AllconvError, match=r"classes \['walrus'\] of labels.txt"): load_images(src, cache_dir=tmp_path/'cache')
