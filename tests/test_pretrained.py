"""The shipped All-CNN-C: it scores on the seeded CIFAR-10 validation split, it takes official-format CIFAR-10 with the
card's statistics, a tampered or malicious weights file is refused without running anything, and a wheel carries it."""
import os, pickle, subprocess, sys
from pathlib import Path
import pytest, torch
from allconv_fastai import (AllconvError, allcnn_learner, cifar_dls, find_cifar10_jpg, load_weights, model_card,
                            pretrained_model, pretrained_names, weights_dir)
from conftest import cifar10_python_files, tar_gz

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif('all-cnn-c' not in pretrained_names(), reason="no weights in allconv_fastai/weights yet")
def cifar10_python(path: Path, n=20) -> Path:
    "A small archive shaped like cifar-10-python.tar.gz."
    path.write_bytes(tar_gz(cifar10_python_files(n)))
    return path

@pytest.mark.skipif(find_cifar10_jpg() is None, reason="no CIFAR-10 JPEGs: set ALLCONV_CIFAR10_JPG to cifar10-jpg-train.tar.gz")
def test_scores_on_the_seeded_validation_split(tmp_path, monkeypatch):
    monkeypatch.setenv('ALLCONV_CACHE', str(tmp_path/'cache'))
    learn = allcnn_learner(cifar_dls('cifar10-jpg'), 'all-cnn-c', pretrained=True)
    assert '45,000 train / 5,000 valid (seed 42)' in learn.dls.data_name
    pv,t = learn.mirror_tta(per_view=True)   # the plain view is what `validate` scores: two passes over 5,000 images, not three
    acc,tta = (float((p.argmax(1)==t).float().mean()) for p in (pv[0], pv.mean(0)))
    card = model_card('all-cnn-c')
    print(f"pretrained All-CNN-C on {learn.dls.data_name}: {acc:.4f}, mirror TTA {tta:.4f}")
    assert acc >= 0.88 and tta >= 0.88
    assert abs(acc - card['valid_accuracy']) < 2e-3 and abs(tta - card['valid_accuracy_mirror_tta']) < 2e-3

def test_official_python_batches_use_the_cards_statistics(tmp_path, monkeypatch):
    monkeypatch.setenv('ALLCONV_CACHE', str(tmp_path/'cache'))
    dls = cifar_dls(cifar10_python(tmp_path/'cifar-10-python.tar.gz'), bs=16, valid=10)
    learn = allcnn_learner(dls, 'all-cnn-c', pretrained=True)
    card = model_card('all-cnn-c')
    norm = [t for t in dls.train.after_batch.fs if type(t).__name__=='Normalize'][0]
    assert torch.allclose(norm.mean.flatten().cpu(), torch.tensor(card['mean'])) and torch.allclose(norm.std.flatten().cpu(), torch.tensor(card['std']))
    with learn.no_bar(): p,_ = learn.get_preds()
    assert p.shape == (10, 10) and torch.allclose(p.sum(1), torch.ones(10), atol=1e-4)

def test_data_the_body_cannot_take_is_refused_in_one_line(tmp_path):
    "Other classes and other sizes get a new head (tests/test_transfer.py); images too small for the body, or ZCA, do not."
    from allconv_fastai import digits_dls
    learn = allcnn_learner(cifar_dls(cifar10_python(tmp_path/'cifar-10-python.tar.gz'), size=16, valid=10, cache_dir=tmp_path),
                           'all-cnn-c', pretrained=True)
    torch.testing.assert_close(learn.model[-3].weight, pretrained_model()[-3].weight)   # CIFAR-10's classes: the shipped head
    for dls,msg in ((digits_dls(size=8), r"cannot take this data's 3x8x8 images"), (digits_dls(zca=True), 'without ZCA whitening')):
        with pytest.raises(AllconvError, match=msg) as e: allcnn_learner(dls, 'all-cnn-c', pretrained=True)
        assert '\n' not in str(e.value)

def test_tampered_or_malicious_weights_are_refused(tmp_path):
    good = (weights_dir()/model_card('all-cnn-c')['file']).read_bytes()
    for i,bad in enumerate((good[:len(good)//2], bytes([good[0] ^ 1]) + good[1:], b'')):
        (tmp_path/f'{i}.safetensors').write_bytes(bad)
        with pytest.raises(AllconvError, match='corrupt or tampered with') as e: load_weights('all-cnn-c', tmp_path/f'{i}.safetensors')
        assert '\n' not in str(e.value)
    class Evil:
        def __reduce__(self): return (os.system, (f'touch {tmp_path}/pwned',))
    (tmp_path/'evil.safetensors').write_bytes(pickle.dumps({'conv': Evil()}))
    with pytest.raises(AllconvError, match='corrupt or tampered with'): load_weights('all-cnn-c', tmp_path/'evil.safetensors')
    assert not (tmp_path/'pwned').exists()
    assert pretrained_model().state_dict()['0.0.weight'].shape == (96, 3, 3, 3)   # the real file still loads

def test_wheel_carries_the_weights_and_loads_them_offline(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--no-index', '-w', str(tmp_path/'dist'),
                        str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    whl = next((tmp_path/'dist').glob('allconv_fastai-*.whl'))
    import zipfile
    names = zipfile.ZipFile(whl).namelist()
    assert 'allconv_fastai/weights/all-cnn-c.safetensors' in names and 'allconv_fastai/weights/all-cnn-c.json' in names
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(tmp_path/'v')], check=True, timeout=300)
    vpy = tmp_path/'v'/'bin'/'python'
    site = subprocess.run([str(vpy), '-c', 'import site; print(site.getsitepackages()[0])'], capture_output=True, text=True).stdout.strip()
    with zipfile.ZipFile(whl) as z: z.extractall(site)               # what `pip install --no-deps` does for a pure wheel
    deps = [p for p in sys.path if p.endswith('site-packages')]      # torch, fastai, ... as a plain path: no editable finder
    Path(site, '_deps.pth').write_text('\n'.join(deps) + '\n')
    code = ("import allconv_fastai, sys; from allconv_fastai import pretrained_model, model_card; "
            "m = pretrained_model(); print(allconv_fastai.__file__); print(model_card()['sha256'])")
    env = {k: v for k,v in os.environ.items() if k not in ('PYTHONPATH',)}
    env.update(http_proxy='http://127.0.0.1:9', https_proxy='http://127.0.0.1:9', no_proxy='')   # no network
    r = subprocess.run([str(vpy), '-c', code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    file,sha = r.stdout.split()[-2:]
    assert file.startswith(site) and sha == model_card('all-cnn-c')['sha256']
