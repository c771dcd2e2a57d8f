"""A run folder that stands on its own: predicting and evaluating need only the folder,
data found again under the recorded path is checked against the run's record, a default batch size fits small data,
and the numbers say which weights they come from."""
import io, json, shutil, tarfile
from pathlib import Path
import pytest
from allconv_fastai.data.sources import find_cifar10_jpg
from allconv_fastai.cli import train_main, eval_main, predict_main
from allconv_fastai.build import load_run

CLASSES = ('airplane', 'automobile', 'bird')   # the first three CIFAR-10 classes by name; not chosen for being easy

def toy_folder(root:Path, n_per:int=20, skip:int=0) -> Path:
    "Where this machine has no CIFAR-10 JPEGs: the same layout, each class of CLASSES a colour plus noise (learnable), images `skip`.. of each class's seeded sequence."
    import torch
    from torchvision.io import encode_jpeg
    for k,c in enumerate(CLASSES):
        g = torch.Generator().manual_seed(k)
        colour = torch.tensor([40., 40., 40.]).index_fill(0, torch.tensor([k % 3]), 200.).view(3, 1, 1)
        noise = torch.randn(skip + n_per, 3, 32, 32, generator=g)*40
        d = root/'train'/c; d.mkdir(parents=True, exist_ok=True)
        for i in range(skip, skip + n_per):
            (d/f'{i:04d}.jpg').write_bytes(bytes(encode_jpeg((colour + noise[i]).clamp(0, 255).to(torch.uint8), quality=90).numpy()))
    return root

def cifar_folder(root:Path, n_per:int=20, skip:int=0) -> Path:
    "A folder train/<class>/*.jpg of `n_per` CIFAR-10 JPEGs of each of CLASSES (after the first `skip` of each); `toy_folder`'s where there are none."
    src = find_cifar10_jpg()
    if src is None: return toy_folder(root, n_per, skip)
    got = {c: 0 for c in CLASSES}
    def members():
        if Path(src).is_dir():
            for p in sorted(Path(src).rglob('*.jpg')): yield p.parts, p.read_bytes
        else:
            with tarfile.open(src) as tf:
                for m in tf:
                    if m.isfile() and m.name.endswith('.jpg'): yield Path(m.name).parts, (lambda m=m: tf.extractfile(m).read())
    seen = {c: 0 for c in CLASSES}
    for parts,read in members():
        c = parts[-2]
        if c not in got or got[c] >= n_per: continue
        seen[c] += 1
        if seen[c] <= skip: continue
        (root/'train'/c).mkdir(parents=True, exist_ok=True)
        (root/'train'/c/parts[-1]).write_bytes(read()); got[c] += 1
        if all(v >= n_per for v in got.values()): break
    return root

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "allconv-train on 60 CIFAR-10 JPEGs of 3 classes (toy JPEGs where there are none), default settings (fast recipe, 3 epochs), seed 0."
    tmp = tmp_path_factory.mktemp('own')
    data = cifar_folder(tmp/'own')
    out = io.StringIO()
    import contextlib
    with contextlib.redirect_stdout(out):
        assert train_main(['--data', str(data), '--out', str(tmp/'run'), '--seed', '0', '--precision', 'fp32']) == 0
    return tmp, data, tmp/'run', out.getvalue()

def test_small_data_gets_a_batch_size_that_learns(trained):
    tmp, data, run, out = trained
    assert 'Batch size 4: 48 training images make 12 optimizer steps an epoch (the default 256 would make 1)' in out, out
    cfg, m = json.loads((run/'config.json').read_text()), json.loads((run/'metrics.json').read_text())
    assert cfg['bs'] == 4
    print(f"60 images, 3 classes, default epochs: valid accuracy {m['valid_accuracy']:.4f} ({m['valid_accuracy']*12:.0f}/12)")
    assert m['valid_accuracy'] > 1/3, m    # above chance with the defaults
    assert 'Next: allconv-eval' in out and 'allconv-predict' in out

def test_run_predicts_after_its_data_moved(trained, capsys):
    tmp, data, run, out = trained
    img = next((data/'train'/'bird').iterdir())
    shutil.copy(img, tmp/'query.jpg')
    capsys.readouterr()
    assert predict_main([str(run), str(tmp/'query.jpg'), '--json']) == 0
    before = json.loads(capsys.readouterr().out)[0]['top'][0]['class']
    data.rename(tmp/'moved')                                   # the training data is gone from its recorded path
    try:
        assert predict_main([str(run), str(tmp/'query.jpg'), '--json']) == 0
        assert json.loads(capsys.readouterr().out)[0]['top'][0]['class'] == before
        learn = load_run(run)
        assert str(learn.predict(tmp/'query.jpg')[0]) == before
        learn.export(tmp/'export.pkl')                         # fastai's usual export of it
        assert (tmp/'export.pkl').stat().st_size > 0
    finally: (tmp/'moved').rename(data)

def test_other_data_under_the_recorded_path_is_refused(trained, tmp_path, monkeypatch, capsys):
    tmp, data, run, out = trained
    # train from directory A on data/x, then evaluate from directory B whose data/x holds other images
    a, b = tmp_path/'A', tmp_path/'B'
    cifar_folder(a/'data'/'x', n_per=12); cifar_folder(b/'data'/'x', n_per=14, skip=12)
    monkeypatch.chdir(a)
    assert train_main(['--data', 'data/x', '--out', str(tmp_path/'r'), '--epochs', '1', '--widths', '16,32', '--precision', 'fp32', '--no-tta']) == 0
    monkeypatch.chdir(b)
    capsys.readouterr()
    assert eval_main([str(tmp_path/'r')]) == 2
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 1 and 'is not the data' in err[0] and 'Fix:' in err[0], err

def test_eval_default_is_the_weights_metrics_report(trained):
    tmp, data, run, out = trained
    m = json.loads((run/'metrics.json').read_text())
    import contextlib
    with contextlib.redirect_stdout(io.StringIO()) as o: assert eval_main([str(run), '--json']) == 0
    r = json.loads(o.getvalue())
    assert m['weights'] == 'last.pth (epoch 2)' and r['weights'] == m['weights'], (m['weights'], r['weights'])
    assert r['valid_accuracy'] == m['valid_accuracy']

def test_predict_arch_offers_the_shipped_nets(capsys):
    from allconv_fastai.pretrained import pretrained_names
    with pytest.raises(SystemExit): predict_main(['--help'])
    h = ' '.join(capsys.readouterr().out.split())
    assert f"Shipped: {', '.join(pretrained_names()) or 'none'}" in h and 'model-a' not in h, h

def test_pretrained_run_fine_tunes_and_predicts_after_the_data_moved(tmp_path, capsys):
    "allconv-train --data FOLDER --pretrained: the shipped body, a new head, the body frozen for the first epoch; the run stands alone."
    data = cifar_folder(tmp_path/'own', n_per=20)
    run = tmp_path/'run'
    assert train_main(['--data', str(data), '--pretrained', '--out', str(run), '--seed', '0', '--precision', 'fp32']) == 0
    cfg, m = json.loads((run/'config.json').read_text()), json.loads((run/'metrics.json').read_text())
    assert (cfg['pretrained'], cfg['freeze_epochs']) == (True, 1)    # the record says so
    print(f"pretrained, 60 images: valid accuracy {m['valid_accuracy']:.4f}")
    img = tmp_path/'q.jpg'; shutil.copy(next((data/'train'/'automobile').iterdir()), img)
    capsys.readouterr()
    assert predict_main([str(run), str(img), '--json']) == 0
    before = json.loads(capsys.readouterr().out)[0]['top'][0]['class']
    data.rename(tmp_path/'renamed')
    assert predict_main([str(run), str(img), '--json']) == 0
    assert json.loads(capsys.readouterr().out)[0]['top'][0]['class'] == before
    assert str(load_run(run).predict(img)[0]) == before

def test_frozen_for_resumes_exactly(tmp_path):
    "A pretrained run killed after its frozen epoch resumes to the uninterrupted run's weights."
    import torch
    from allconv_fastai.train import train_run
    from allconv_fastai.checkpoint import load_checkpoint
    from allconv_fastai.test_utils import InterruptAfter
    data = cifar_folder(tmp_path/'own', n_per=12)
    kw = dict(data=str(data), pretrained=True, epochs=3, seed=0, precision='fp32', tta=False)
    train_run(tmp_path/'a', **kw)
    train_run(tmp_path/'b', **kw, cbs=[InterruptAfter(0)])
    assert load_checkpoint(tmp_path/'b'/'last.pth')['meta']['epoch'] == 0     # stopped after the frozen epoch
    (tmp_path/'b'/'metrics.json').unlink(missing_ok=True)
    train_run(tmp_path/'b', resume=True)
    assert load_checkpoint(tmp_path/'b'/'last.pth')['meta']['epoch'] == 2
    a, b = (load_checkpoint(tmp_path/r/'last.pth')['model'] for r in 'ab')
    assert all(torch.equal(a[k], b[k]) for k in a)
