"`predict`/`test_dl` on images as users have them (paths, PIL, numpy, tensors, fastai's image types), `ClassificationInterpretation`, `allconv-predict`, a small export."
import json, textwrap
from pathlib import Path
import pytest
import torch
from PIL import Image
import forked
from conftest import ENV, save_image

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "A run directory (one epoch on the digits, narrow net, fp32), its learner with `best.pth` loaded, and three image files."
    from allconv_fastai.config import RunConfig, read_config
    from allconv_fastai.build import run_dls, run_learner
    from allconv_fastai.train import train_run
    from allconv_fastai.checkpoint import load_checkpoint
    d = tmp_path_factory.mktemp('predict')
    train_run(d/'run', RunConfig(widths='16,32', size=16, epochs=1, precision='fp32', tta=False))
    cfg = read_config(d/'run')
    dls = run_dls(cfg)
    learn = run_learner(cfg, dls, path=d)
    load_checkpoint(d/'run'/'best.pth', learn.model)
    xs = dls.valid_ds.x[:3].cpu()
    for i,ext in enumerate(('png', 'jpg', 'png')): save_image(d/f'{"abc"[i]}.{ext}', xs[i])
    learn.export('export.pkl')
    return d,learn,xs

def test_predict_takes_paths_pil_numpy_and_tensors_before_and_after_export(trained):
    from fastai.learner import load_learner
    d,learn,xs = trained
    x = xs[0]
    from fastai.vision.core import PILImage, PILImageBW, TensorImage
    forms = [d/'a.png', str(d/'a.png'), Image.open(d/'a.png'), x.permute(1,2,0).numpy(), x,
             PILImage.create(d/'a.png'), TensorImage(x), TensorImage(x.float()/255)]   # fastai's own image types too
    learn2 = load_learner(d/'export.pkl')
    for l in (learn, learn2):
        res = [l.predict(o) for o in forms]
        assert len({r[0] for r in res}) == 1, [r[0] for r in res]       # one class whatever the form
        cls,idx,probs = res[0]
        assert cls == l.dls.vocab[int(idx)] and probs.shape == (10,)
        assert abs(float(probs.sum()) - 1) < 1e-4
        for r in res[1:]: torch.testing.assert_close(r[2], probs)       # the same image: the same probabilities
    assert learn2.predict(d/'a.png')[0] == learn.predict(d/'a.png')[0]
    # grey, RGBA and another size are converted as the data was
    assert learn.predict(Image.open(d/'a.png').convert('RGBA'))[0] == learn.predict(d/'a.png')[0]
    assert learn.predict(PILImageBW.create(d/'a.png'))[2].shape == (10,)
    big = Image.open(d/'a.png').resize((48,48), Image.NEAREST)
    assert learn.dls.test_dl([big]).dataset.x.shape == (1,3,16,16)
    dl = learn.dls.test_dl([PILImage.create(d/'a.png'), TensorImage(x)])   # a batch of fastai's types: the stored pixels
    assert torch.equal(dl.dataset.x[0].cpu(), x) and torch.equal(dl.dataset.x[1].cpu(), x)

def test_test_dl_over_paths(trained):
    d,learn,_ = trained
    dl = learn.dls.test_dl([d/'a.png', d/'b.jpg', d/'c.png'])
    preds,_ = learn.get_preds(dl=dl)
    assert preds.shape == (3,10)
    assert torch.allclose(preds.sum(1), torch.ones(3), atol=1e-4)

def test_classification_interpretation(trained):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from fastai.interpret import ClassificationInterpretation
    d,learn,_ = trained
    interp = ClassificationInterpretation.from_learner(learn)
    assert list(interp.vocab) == [str(i) for i in range(10)]
    cm = interp.confusion_matrix()
    assert cm.shape == (10,10) and cm.sum() == len(learn.dls.valid_ds)
    assert all(a != b for a,b,_ in interp.most_confused())
    interp.plot_top_losses(4)
    assert len(plt.gcf().axes) == 4
    plt.savefig(d/'top_losses.png'); plt.close('all')
    assert (d/'top_losses.png').stat().st_size > 1000
    assert Image.open(d/'top_losses.png').size[0] > 100
    interp.plot_confusion_matrix(); plt.close('all')

def test_allconv_predict_table_errors_and_json(trained, cli):
    from allconv_fastai.cli import predict_main, commands
    d,learn,_ = trained
    assert commands['predict'] is predict_main
    p = cli(predict_main, 'run', 'a.png', 'b.jpg', 'missing.png', cwd=d)
    assert p.returncode != 0
    rows = p.stdout.strip().splitlines()
    assert len(rows) == 1 + 2 and rows[0].split()[:2] == ['image', 'top-1'], p.stdout
    assert rows[1].startswith('a.png') and rows[2].startswith('b.jpg')
    assert rows[1].split()[1] == learn.predict(d/'a.png')[0]         # the top class is what `predict` says
    errs = p.stderr.strip().splitlines()
    assert len(errs) == 1 and errs[0].startswith('error: ') and 'missing.png' in errs[0], p.stderr
    j = cli(predict_main, d/'run', d/'a.png', d/'b.jpg', '--json', '--top-k', '2')
    assert j.returncode == 0, j.stderr
    r = json.loads(j.stdout)
    assert [Path(o['image']).name for o in r] == ['a.png', 'b.jpg'] and all(len(o['top']) == 2 for o in r)
    assert r[0]['top'][0]['probability'] >= r[0]['top'][1]['probability']
    assert r[0]['top'][0]['class'] == rows[1].split()[1]

def test_export_is_small_and_loads_in_a_fresh_process(trained):
    d,learn,_ = trained
    size = (d/'export.pkl').stat().st_size
    n_model = sum(v.numel()*v.element_size() for v in learn.model.state_dict().values())
    assert size < 300_000 and size < n_model + 64_000, (size, n_model)
    want = [learn.predict(d/f)[0] for f in ('a.png', 'b.jpg', 'c.png')]
    code = textwrap.dedent(f"""
        import warnings; warnings.simplefilter('ignore')
        from fastai.learner import load_learner
        l = load_learner({str(d/'export.pkl')!r})
        with l.no_bar(): print(' '.join(l.predict({str(d)!r} + '/' + f)[0] for f in ('a.png', 'b.jpg', 'c.png')))""")
    p = forked.run(['-c', code], env=ENV, timeout=300, fresh=True)   # a new interpreter: nothing imported but what the pickle needs
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == want
