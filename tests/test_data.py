"The data module on real on-disk formats: untar_data folders, .tar.gz of class folders, CIFAR python pickles; bad input."
import os, pickle, tarfile, time
from pathlib import Path
import numpy as np
import pytest
import torch
import allconv_fastai.data.sources as data
from allconv_fastai.core import AllconvError
from allconv_fastai.data.sources import find_cifar10_jpg
from allconv_fastai import cifar_dls, digits_dls, load_images, cache_path, tensor_dls
from conftest import C10, cifar_pickle as _pk, cifar10_python_files, image_folder, tar_gz

def make_untar_cifar10(root: Path, n_per=2, classes=C10[:3], size=32, seed=0, ext='png'):
    "fastai's untar_data(URLs.CIFAR) layout: cifar10/{train,test}/<class>/*.png + labels.txt. Returns {(split, class, i): image}."
    ims = image_folder(root, classes, n_per, splits=('train', 'test'), size=size, seed=seed, ext=ext, labels=True)
    return {(k.split('/')[0], k.split('/')[1], int(k.split('/')[2][:4])): im for k,im in ims.items()}

def make_untar_cifar100(root: Path, n_per=2, seed=0):
    "CIFAR-100 as class folders grouped in superclass folders: cifar100/{train,test}/<coarse>/<fine>/*.png. Returns {(split, coarse, fine, i): image}."
    fines = ('fish/ray', 'fish/shark', 'trees/maple_tree', 'trees/oak_tree', 'trees/palm_tree')
    ims = image_folder(root, fines, n_per, splits=('train', 'test'), seed=seed)
    return {tuple(k.split('/')[:3]) + (int(k.split('/')[3][:4]),): im for k,im in ims.items()}

def make_cifar10_python(path: Path, n=4, seed=0, drop=None):
    "An archive shaped like cifar-10-python.tar.gz, without the file `drop`. Returns (x, y, x_test, y_test)."
    files = cifar10_python_files(n, seed)
    path.write_bytes(tar_gz({k: v for k,v in files.items() if k != drop}))
    b = {k: pickle.loads(v) for k,v in files.items()}
    xy = lambda names: (torch.from_numpy(np.concatenate([b[k][b'data'] for k in names])).view(-1, 3, 32, 32),
                        torch.tensor(sum((b[k][b'labels'] for k in names), [])))
    return (*xy([f'data_batch_{i}' for i in range(1, 6)]), *xy(['test_batch']))

def make_cifar100_python(path: Path, n=6, seed=0):
    "An archive shaped like cifar-100-python.tar.gz: train/test/meta with fine and coarse labels."
    rng = np.random.default_rng(seed)
    fine = ['f%02d' % i for i in range(100)]; coarse = ['c%02d' % i for i in range(20)]
    files, res = {}, {}
    for name in ('train', 'test'):
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        yf = [int(v) for v in rng.integers(0, 100, n)]; yc = [v // 5 for v in yf]
        files[name] = _pk({'filenames': [b'x.png'] * n, 'batch_label': b'b', 'fine_labels': yf, 'coarse_labels': yc, 'data': x})
        res[name] = (torch.from_numpy(x).view(-1, 3, 32, 32), torch.tensor(yf), torch.tensor(yc))
    files['meta'] = _pk({'fine_label_names': [f.encode() for f in fine], 'coarse_label_names': [c.encode() for c in coarse]})
    path.write_bytes(tar_gz(files, 'cifar-100-python'))
    return res, fine, coarse

def _no_decode(monkeypatch):
    "Make any decoding fail, so a passing load proves the cache was used."
    def boom(*a, **k): raise AssertionError("decoded although a cache exists")
    for n in ('decode_image_bytes', '_read_image_folders', '_read_pickles'): monkeypatch.setattr(data, n, boom)

@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path/'cache'; monkeypatch.setenv('ALLCONV_CACHE', str(d)); return d


# ---------------------------------------------------------------- round trips

def test_untar_cifar10_roundtrip_and_cache(tmp_path, cache, monkeypatch):
    ims = make_untar_cifar10(tmp_path/'cifar10', n_per=3)
    dls = cifar_dls('cifar10', path=tmp_path, bs=2, valid=3, seed=0)   # named source, looked up in `path`
    assert not dls.from_cache and dls.vocab == C10[:3] and dls.c == 3
    assert (len(dls.train_ds), len(dls.valid_ds), len(dls.test.dataset)) == (6, 3, 9)
    assert dls.data_name == 'CIFAR-10, 6 train / 3 valid (seed 0) / 9 test'
    s = load_images(tmp_path/'cifar10')
    for (sp, c, i), im in ims.items():   # pixels and labels round-trip exactly, files in sorted order
        x, y = (s.x, s.y) if sp == 'train' else (s.x_test, s.y_test)
        k = C10[:3].index(c)*3 + i
        assert torch.equal(x[k], im) and int(y[k]) == C10.index(c)
    assert s.from_cache
    assert len(list(cache.iterdir())) == 1 and not list(tmp_path.glob('*.safetensors'))
    _no_decode(monkeypatch)
    dls2 = cifar_dls('cifar10', path=tmp_path, bs=2, valid=3, seed=0)
    assert dls2.from_cache
    assert torch.equal(dls2.valid_ds.x, dls.valid_ds.x) and torch.equal(dls2.train_ds.y, dls.train_ds.y)

def test_split_is_deterministic_and_honest(tmp_path, cache):
    make_untar_cifar10(tmp_path/'c', n_per=10)
    a, b = cifar_dls(tmp_path/'c', bs=4, valid=6, seed=1), cifar_dls(tmp_path/'c', bs=4, valid=6, seed=1)
    c = cifar_dls(tmp_path/'c', bs=4, valid=6, seed=2)
    assert torch.equal(a.valid_ds.x, b.valid_ds.x) and not torch.equal(a.valid_ds.x, c.valid_ds.x)
    assert torch.bincount(a.valid_ds.y.cpu()).tolist() == [2, 2, 2]   # stratified
    tr = {bytes(t.numpy()) for t in a.train_ds.x.cpu()}; va = {bytes(t.numpy()) for t in a.valid_ds.x.cpu()}
    assert not tr & va and len(tr) + len(va) == 30                   # held out of the training images
    assert len(a.test.dataset) == 30                                 # the test split untouched
    t = cifar_dls(tmp_path/'c', bs=4, valid='test')
    assert t.test is None and len(t.valid_ds) == 30 and 'test (as validation)' in t.data_name
    sub = cifar_dls(tmp_path/'c', bs=4, valid=6, seed=1, n_train=12)
    assert len(sub.train_ds) == 12 and torch.equal(sub.valid_ds.x, a.valid_ds.x)

def test_targz_of_class_folders_any_extension(tmp_path, cache, monkeypatch):
    "The shared JPEG archive's shape: cifar10-jpg/train/<class>/NNNN.jpg in a .tar.gz, no test split."
    root = tmp_path/'src'/'cifar10-jpg'
    make_untar_cifar10(root, n_per=4, ext='jpg')
    import shutil; shutil.rmtree(root/'test'); (root/'labels.txt').unlink()
    arc = tmp_path/'cifar10-jpg-train.tar.gz'
    with tarfile.open(arc, 'w:gz') as tf: tf.add(root, arcname='cifar10-jpg')
    dls = cifar_dls(arc, bs=4, valid=3)
    assert dls.test is None and dls.vocab == C10[:3] and len(dls.train_ds) == 9
    assert dls.data_name.startswith('CIFAR-10 (JPEG q75), 9 train / 3 valid (seed 42)')
    folder = load_images(root)   # the extracted folder decodes to the same pixels
    s = load_images(arc)
    assert torch.equal(s.x, folder.x) and torch.equal(s.y, folder.y)
    _no_decode(monkeypatch)
    assert cifar_dls(arc, bs=4, valid=3).from_cache

def test_untar_cifar100_fine_and_coarse(tmp_path, cache):
    ims = make_untar_cifar100(tmp_path/'cifar100')
    fine = cifar_dls('cifar100', path=tmp_path, bs=2, valid=5)
    coarse = cifar_dls('cifar100-coarse', path=tmp_path, bs=2, valid=2)
    assert fine.vocab == ['maple_tree', 'oak_tree', 'palm_tree', 'ray', 'shark'] and coarse.vocab == ['fish', 'trees']
    s, sc = load_images(tmp_path/'cifar100', 'fine'), load_images(tmp_path/'cifar100', 'coarse')
    assert torch.equal(s.x, sc.x)
    for k, im in enumerate(s.x):   # every image with its fine and coarse label
        (key,) = [kk for kk, v in ims.items() if kk[0] == 'train' and torch.equal(v, im)]
        assert s.vocab[s.y[k]] == key[2] and sc.vocab[sc.y[k]] == key[1]
    assert coarse.data_name.startswith('CIFAR-100 (20 coarse classes)')

def test_cifar10_python_pickles(tmp_path, cache, monkeypatch):
    x, y, xt, yt = make_cifar10_python(tmp_path/'cifar-10-python.tar.gz')
    for src in (tmp_path, tmp_path/'cifar-10-python.tar.gz'):   # the folder holding it, or the archive itself
        s = load_images(src)
        assert s.vocab == C10 and torch.equal(s.x, x) and torch.equal(s.y, y)
        assert torch.equal(s.x_test, xt) and torch.equal(s.y_test, yt)
    ex = tmp_path/'ex'; ex.mkdir()
    with tarfile.open(tmp_path/'cifar-10-python.tar.gz') as tf: tf.extractall(ex, filter='data')
    assert torch.equal(load_images(ex/'cifar-10-batches-py').x, x)   # extracted batches
    dls = cifar_dls('cifar10', path=tmp_path, bs=4, valid=4)
    assert len(dls.train_ds) == 16 and len(dls.test.dataset) == 4 and dls.vocab == C10
    _no_decode(monkeypatch)
    assert cifar_dls('cifar10', path=tmp_path, bs=4, valid=4).from_cache

def test_cifar100_python_pickles_fine_coarse(tmp_path, cache):
    res, fine, coarse = make_cifar100_python(tmp_path/'cifar-100-python.tar.gz')
    f = load_images(tmp_path/'cifar-100-python.tar.gz', 'fine'); c = load_images(tmp_path/'cifar-100-python.tar.gz', 'coarse')
    assert f.vocab == fine and c.vocab == coarse
    assert torch.equal(f.x, res['train'][0]) and torch.equal(f.y, res['train'][1]) and torch.equal(c.y, res['train'][2])
    assert torch.equal(f.x_test, res['test'][0]) and torch.equal(c.y_test, res['test'][2])
    dls = cifar_dls('cifar100-coarse', path=tmp_path, bs=2, valid=2)
    assert dls.c == 20 and len(dls.test.dataset) == 6

def test_cache_beside_data_only_when_asked(tmp_path, monkeypatch):
    # by default the cache goes to the per-user cache folder, never beside the data, even when writable
    monkeypatch.delenv('ALLCONV_CACHE', raising=False)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path/'user-cache'))
    make_untar_cifar10(tmp_path/'data'/'cifar10')
    load_images(tmp_path/'data'/'cifar10')
    assert sorted(p.name for p in (tmp_path/'data').iterdir()) == ['cifar10']
    assert cache_path(tmp_path/'data'/'cifar10').parent == tmp_path/'user-cache'/'allconv_fastai'
    assert cache_path(tmp_path/'data'/'cifar10').exists()
    # asked for (ALLCONV_CACHE pointing at the data's folder): there it goes
    monkeypatch.setenv('ALLCONV_CACHE', str(tmp_path/'data'))
    load_images(tmp_path/'data'/'cifar10')
    assert cache_path(tmp_path/'data'/'cifar10').parent == tmp_path/'data'
    assert cache_path(tmp_path/'data'/'cifar10').exists()
    from safetensors import safe_open   # plain tensors + json metadata, no pickle
    with safe_open(str(cache_path(tmp_path/'data'/'cifar10')), 'pt') as f: assert set(f.keys()) == {'x', 'y', 'x_test', 'y_test'}


# ---------------------------------------------------------------- bad input

def _no_stray_files(d: Path): return [p.name for p in d.rglob('*') if p.is_file()] if d.exists() else []

@pytest.mark.parametrize('bs', [0, -1, 2.5])
def test_bad_batch_size(tmp_path, cache, bs):
    make_untar_cifar10(tmp_path/'c')
    with pytest.raises(AllconvError, match='`bs` must be'): cifar_dls(tmp_path/'c', bs=bs, valid=2)
    with pytest.raises(AllconvError, match='`bs` must be'): digits_dls(bs=bs)

def test_unknown_name_and_missing_data(tmp_path, cache, monkeypatch):
    with pytest.raises(AllconvError, match="Unknown dataset 'cifar1000'.*Fix:"): cifar_dls('cifar1000')
    with pytest.raises(AllconvError, match=r"No CIFAR-100 data in .*Fix: put cifar-100-python.tar.gz"):
        cifar_dls('cifar100', path=tmp_path/'empty')
    (tmp_path/'emptydir').mkdir()
    with pytest.raises(AllconvError, match='No training images found'): cifar_dls(tmp_path/'emptydir')
    monkeypatch.setenv('FASTAI_HOME', str(tmp_path/'fastai_home'))   # fastai's data folder, never downloads
    with pytest.raises(AllconvError, match='No CIFAR-10 data in'): cifar_dls('cifar10')
    assert not (tmp_path/'fastai_home'/'data'/'cifar10').exists()

def test_partial_folders(tmp_path, cache):
    make_untar_cifar10(tmp_path/'a')
    for f in (tmp_path/'a'/'train'/'bird').iterdir(): f.unlink()       # one class folder emptied
    with pytest.raises(AllconvError, match='incomplete: empty folders'): cifar_dls(tmp_path/'a')
    make_untar_cifar10(tmp_path/'b')
    import shutil; shutil.rmtree(tmp_path/'b'/'train'/'bird')           # class gone from train but in test
    with pytest.raises(AllconvError, match=r"incomplete: test classes \['bird'\]"): cifar_dls(tmp_path/'b')
    make_untar_cifar10(tmp_path/'c')
    shutil.rmtree(tmp_path/'c'/'train'/'bird'); shutil.rmtree(tmp_path/'c'/'test'/'bird')
    with pytest.raises(AllconvError, match=r"classes \['bird'\] of labels.txt"): cifar_dls(tmp_path/'c')
    make_cifar10_python(tmp_path/'cifar-10-python.tar.gz', drop='data_batch_3')
    with pytest.raises(AllconvError, match='incomplete: data_batch_3 missing'): cifar_dls('cifar10', path=tmp_path)
    assert _no_stray_files(cache) == []

def test_truncated_and_corrupt_archives(tmp_path, cache):
    make_cifar10_python(tmp_path/'full.tar.gz', n=200)
    b = (tmp_path/'full.tar.gz').read_bytes()
    (tmp_path/'cifar-10-python.tar.gz').write_bytes(b[:len(b)//2])
    with pytest.raises(AllconvError, match='truncated or corrupt.*Fix: re-download'): cifar_dls('cifar10', path=tmp_path)
    (tmp_path/'cifar-10-python.tar.gz').write_bytes(b'\x1f\x8b' + os.urandom(5000))
    with pytest.raises(AllconvError, match='truncated or corrupt'): load_images(tmp_path/'cifar-10-python.tar.gz')
    make_untar_cifar10(tmp_path/'imgs')
    (tmp_path/'imgs'/'train'/'bird'/'bad.png').write_bytes(b'\x89PNG not really')
    with pytest.raises(AllconvError, match=r'train/bird/bad.png is not a readable image'): load_images(tmp_path/'imgs')
    assert _no_stray_files(cache) == []

def test_corrupt_pickle_is_refused(tmp_path, cache):
    "A batch file that tries to run code is refused rather than executed."
    class Evil:
        def __reduce__(self): return (os.system, ('echo hacked',))
    (tmp_path/'cifar-10-python.tar.gz').write_bytes(tar_gz({n: pickle.dumps(Evil()) for n in data.CIFAR10_PY}))
    with pytest.raises(AllconvError, match='not a readable CIFAR batch file.*refusing'): cifar_dls('cifar10', path=tmp_path)

def test_wrong_image_size(tmp_path, cache):
    make_untar_cifar10(tmp_path/'c')
    image_folder(tmp_path/'c', classes=('bird',), n_per=1, size=28)   # replaces train/bird/0000.png by a 28x28 image
    with pytest.raises(AllconvError, match=r'images differ in size.*Fix: resize'): cifar_dls(tmp_path/'c')
    make_untar_cifar10(tmp_path/'small', size=28)
    with pytest.raises(AllconvError, match=r'CIFAR images must be 3x32x32'): cifar_dls('cifar10', path=tmp_path/'small')
    assert cifar_dls(tmp_path/'small', bs=2, valid=2).train_ds.x.shape[-1] == 28   # any size is fine for a plain folder
    assert _no_stray_files(cache) != []   # (only the good folder was cached)

def test_predict_resizes_other_sizes_and_rejects_bad_values(tmp_path):
    x = torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8); y = torch.arange(20) % 2
    dls = tensor_dls(x, y, ['a', 'b'], x[:4], y[:4], bs=4)
    assert dls.test_dl([torch.zeros(3, 9, 9, dtype=torch.uint8)]).one_batch()[0].shape == (1, 3, 8, 8)   # resized to the data's size
    with pytest.raises(AllconvError, match=r'values in 0..1'): dls.test_dl([torch.full((3, 8, 8), 3.)])
    assert len(dls.test_dl([x[0], x[1].float()/255]).dataset) == 2


# ---------------------------------------------------------------- the shared real images

@pytest.mark.slow
def test_shared_cifar10_jpg(tmp_path):
    p = find_cifar10_jpg()
    if p is None: pytest.skip("no shared CIFAR-10 JPEGs here (set ALLCONV_CIFAR10_JPG to cifar10-jpg-train.tar.gz)")
    import matplotlib; matplotlib.use('Agg')
    t = time.time(); dls = cifar_dls('cifar10-jpg', cache_dir=tmp_path); t1 = time.time() - t
    t = time.time(); dls2 = cifar_dls('cifar10-jpg', cache_dir=tmp_path); t2 = time.time() - t
    print(f"first load {t1:.1f} s, cached {t2:.1f} s")
    assert not dls.from_cache and dls2.from_cache
    assert dls.vocab == C10 and len(dls.train_ds) == 45000 and len(dls.valid_ds) == 5000
    assert torch.bincount(dls.valid_ds.y.cpu()).tolist() == [500]*10
    assert torch.equal(dls.train_ds.x, dls2.train_ds.x)
    dls2.show_batch(max_n=4)
