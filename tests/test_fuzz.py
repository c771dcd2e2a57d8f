"""Random and mutated bytes fed to every loader give an `AllconvError` naming the file (or, for a mutation
that misses everything the format checks, exactly the original content), never another exception, wrong data or a
hang. Loaders: checkpoints, the decode cache, CIFAR archives and pickle batches, the image decoder, run configs."""
import functools, io, os, pickle, signal, tempfile
from pathlib import Path
import pytest
import torch
from hypothesis import given, settings, strategies as st, HealthCheck
import allconv_fastai.data.sources as data
from allconv_fastai.core import AllconvError
from allconv_fastai import get_arch, save_checkpoint, load_checkpoint
from allconv_fastai.test_utils import encode_image
import forked
from conftest import cifar10_python_files, tar_gz

FUZZ = settings(max_examples=40, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def no_hang(test):
    "Fail (rather than hang) where one example of `test` (one load, a few ms) runs longer than 60 s, however busy the machine."
    @functools.wraps(test)
    def guarded(*args, **kwargs):
        def boom(*a): raise TimeoutError("loader hung for 60 s")
        old = signal.signal(signal.SIGALRM, boom); signal.alarm(60)
        try: return test(*args, **kwargs)
        finally: signal.alarm(0); signal.signal(signal.SIGALRM, old)
    return guarded


def mutations(good: bytes):
    "Truncations, byte flips and random-bytes splices of `good`, plus plain random bytes."
    n = len(good)
    trunc = st.integers(0, n-1).map(lambda i: good[:i])
    def flip(fs):
        b = bytearray(good)
        for i, x in fs: b[i % n] ^= x
        return bytes(b)
    flips = st.lists(st.tuples(st.integers(0, n-1), st.integers(1, 255)), min_size=1, max_size=8).map(flip)
    splice = st.tuples(st.integers(0, n-1), st.binary(min_size=1, max_size=64)).map(lambda t: good[:t[0]] + t[1] + good[t[0]+len(t[1]):])
    return st.one_of(trunc, flips, splice, st.binary(max_size=4096))

def _in_tmp(name, b):
    d = Path(tempfile.mkdtemp(prefix='fuzz-')); p = d/name; p.write_bytes(b); return p


# ---------------------------------------------------------------------------------------------------------- checkpoints

def _net(): return get_arch('all-cnn-c', n_out=10, widths=(8, 16), bn=True, dropout=False)

@functools.lru_cache(None)
def good_ckpt() -> bytes:
    torch.manual_seed(0)
    m = _net(); opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m(torch.randn(2, 3, 16, 16)).sum().backward(); opt.step()
    p = Path(tempfile.mkdtemp())/'good.pth'
    save_checkpoint(p, m, opt, epoch=3, rng=torch.get_rng_state())
    return p.read_bytes()

@FUZZ
@given(st.data())
@no_hang
def test_load_checkpoint_fuzz(d):
    b = d.draw(mutations(good_ckpt()))
    p = _in_tmp('last.pth', b)
    try: st_ = load_checkpoint(p, _net())
    except AllconvError as e:
        assert str(p) in str(e) and 'Fix:' in str(e)
        return
    # the mutation missed every byte that matters: what loads must be exactly the original
    ref = torch.load(io.BytesIO(good_ckpt()), weights_only=True)
    assert st_['model'].keys() == ref['model'].keys()
    assert all(torch.equal(st_['model'][k], ref['model'][k]) for k in ref['model'])
    assert st_['meta']['epoch'] == 3


# ---------------------------------------------------------------------------------------------------------- decode cache

@functools.lru_cache(None)
def cache_source() -> Path:
    "A tiny folder of class folders, the source every fuzzed cache claims to come from."
    from allconv_fastai.test_utils import png_tree
    src = Path(tempfile.mkdtemp())/'src'; png_tree(src, n_per=2, classes=('a', 'b', 'c'), splits=('train',), size=8)
    return src

def _load_cache(p): return data._load_cache(p, cache_source(), data._files(cache_source()))

@functools.lru_cache(None)
def good_cache() -> bytes:
    s = data.load_images(cache_source(), cache_dir=tempfile.mkdtemp())
    p = Path(tempfile.mkdtemp())/'c.allconv-fine.safetensors'
    data._save_cache(p, s, data._manifest(cache_source(), data._files(cache_source())), 0)
    return p.read_bytes()

def _header_len(b): return 8 + int.from_bytes(b[:8], 'little')

@FUZZ
@given(st.data())
@no_hang
def test_cache_loader_fuzz(d):
    "A damaged cache is never trusted: the loader answers None (decode again) or exactly the cached images."
    good = good_cache()
    b = d.draw(mutations(good))
    ref = _load_cache(_in_tmp('c.safetensors', good))
    assert ref is not None                          # the undamaged cache is served (a loader that refused all would pass otherwise)
    s = _load_cache(_in_tmp('c.safetensors', b))
    if s is None:
        assert b != good, "the undamaged cache was refused"
        return
    assert torch.equal(s.x, ref.x) and torch.equal(s.y, ref.y) and s.vocab == ref.vocab   # the checksum covers tensors and metadata

@no_hang
def test_cache_detects_flipped_pixel():
    good = good_cache()
    b = bytearray(good); b[_header_len(good) + 10] ^= 0x01
    assert _load_cache(_in_tmp('c.safetensors', good)) is not None
    assert _load_cache(_in_tmp('c.safetensors', bytes(b))) is None


# ---------------------------------------------------------------------------------------------------------- archives and pickle batches

@functools.lru_cache(None)
def good_archive() -> bytes: return tar_gz(cifar10_python_files(n=2))

def _load(p):
    with tempfile.TemporaryDirectory() as c: return data.load_images(p, cache_dir=c)

@FUZZ
@given(st.data())
@no_hang
def test_cifar_archive_fuzz(d):
    b = d.draw(mutations(good_archive()))
    p = _in_tmp('cifar-10-python.tar.gz', b)
    try: s = _load(p)
    except AllconvError as e:
        assert 'Fix:' in str(e) and (str(p) in str(e) or any(n in str(e) for n in data.CIFAR10_PY)), str(e)
        return
    ref = _load(_in_tmp('cifar-10-python.tar.gz', good_archive()))
    assert torch.equal(s.x, ref.x) and torch.equal(s.y, ref.y) and s.vocab == ref.vocab
    assert torch.equal(s.x_test, ref.x_test) and torch.equal(s.y_test, ref.y_test)   # the test batch too: whole, or refused

@FUZZ
@given(st.binary(max_size=2048))
@no_hang
def test_random_bytes_as_image_archive(b):
    p = _in_tmp('images.tar.gz', b)
    with pytest.raises(AllconvError, match='Fix:') as e: _load(p)
    assert str(p) in str(e.value)

@FUZZ
@given(st.binary(max_size=2048))
@no_hang
def test_pickle_batch_fuzz(b):
    with pytest.raises(AllconvError, match=r'data_batch_1 is not a readable CIFAR batch file.*Fix:'): data._unpickle(b, 'data_batch_1')

@pytest.mark.parametrize('bad', ['list', 'int', 'no label_names'])
@no_hang
def test_wellformed_pickle_of_wrong_shape(tmp_path, bad):
    files = cifar10_python_files(n=2)
    if bad == 'no label_names': files['batches.meta'] = pickle.dumps({b'names': [b'x']})
    else: files['data_batch_1'] = pickle.dumps([1, 2] if bad == 'list' else 5)
    (tmp_path/'cifar-10-python.tar.gz').write_bytes(tar_gz(files))
    with pytest.raises(AllconvError, match='Fix:'): _load(tmp_path/'cifar-10-python.tar.gz')


# ---------------------------------------------------------------------------------------------------------- image decoder

@functools.lru_cache(None)
def good_images():
    im = torch.randint(0, 256, (3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return encode_image(im), encode_image(im, 'jpg', quality=90)

@FUZZ
@given(st.data())
@no_hang
def test_image_decoder_fuzz(d):
    "Random bytes and damaged PNG/JPEG files: an RGB uint8 image (JPEG tolerates damage) or AllconvError naming the file."
    png, jpg = good_images()
    kind = d.draw(st.sampled_from(('jpg', 'png', 'bytes')))
    b = d.draw({'jpg': mutations(jpg), 'png': st.integers(0, len(png)-1).map(lambda i: png[:i]), 'bytes': st.binary(max_size=1024)}[kind])
    try: x = data.decode_image_bytes(b, 'train/cat/0001.png')
    except AllconvError as e:
        assert 'train/cat/0001.png' in str(e) and 'Fix:' in str(e)
        return
    assert x.dtype == torch.uint8 and x.ndim == 3 and x.shape[0] == 3
    if kind == 'png': assert torch.equal(x, data.decode_image_bytes(png, 'whole.png'))   # a cut PNG decodes whole or not at all: never padded

PNG_SHORT_IDAT = r'''
import struct, zlib
from allconv_fastai import decode_image_bytes
from allconv_fastai.core import AllconvError
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t+d) & 0xffffffff)
png = (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 100, 100, 8, 2, 0, 0, 0))
       + chunk(b'IDAT', zlib.compress(b'\0'*100)) + chunk(b'IEND', b''))
try: decode_image_bytes(png, 'short.png')
except AllconvError as e: print('refused:', e)
'''

def test_png_with_short_image_data_is_refused_not_a_crash():
    "Valid chunks and CRCs but too little pixel data (a corrupted file, or a crafted one)."
    p = forked.run(['-W', 'ignore', '-c', PNG_SHORT_IDAT], timeout=300, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert p.returncode == 0 and 'refused: short.png' in p.stdout, (p.returncode, p.stderr[-500:])


# ---------------------------------------------------------------------------------------------------------- run configs

@functools.lru_cache(None)
def good_config() -> bytes:
    from allconv_fastai.config import RunConfig, save_config
    p = Path(tempfile.mkdtemp())/'config.json'
    save_config(p, RunConfig(data='digits', size=16, widths='16,32', epochs=3, lr=0.05, precision='fp32'))
    return p.read_bytes()

@FUZZ
@given(st.data())
@no_hang
def test_config_loader_fuzz(d):
    "A damaged config.json is refused naming the file, or gives settings that save and read back unchanged."
    from allconv_fastai.config import read_config, save_config
    good = good_config()
    ref = read_config(_in_tmp('config.json', good).parent, check_data=False)
    assert (ref.epochs, ref.lr, ref.size) == (3, 0.05, 16)   # the undamaged record is read (a loader refusing all would pass otherwise)
    b = d.draw(st.one_of(mutations(good), st.binary(max_size=512)))
    run = _in_tmp('config.json', b).parent
    try: cfg = read_config(run, check_data=False)
    except AllconvError as e:
        assert str(run/'config.json') in str(e) and 'Fix:' in str(e), str(e)
        return
    save_config(run/'again.json', cfg)
    (run/'config.json').write_bytes((run/'again.json').read_bytes())
    assert read_config(run, check_data=False).to_dict() == cfg.to_dict()

def test_a_flipped_bit_in_a_gzip_archive_is_refused_not_read_as_other_pixels():
    "gzip checks its CRC only at the end of its stream: the loader reads to there, so damaged pixels are an error, never other pixels."
    good = good_archive()
    ref = _load(_in_tmp('cifar-10-python.tar.gz', good))
    refused = 0
    for i in range(20, len(good) - 8, 37):   # past the gzip header, before its CRC and size trailer
        try: s = _load(_in_tmp('cifar-10-python.tar.gz', good[:i] + bytes([good[i] ^ 0x10]) + good[i+1:]))
        except AllconvError: refused += 1; continue
        assert all(torch.equal(a, b) for a,b in ((s.x, ref.x), (s.y, ref.y), (s.x_test, ref.x_test), (s.y_test, ref.y_test))), i
    assert refused > 0
