"""The redesign's promises, as a user meets them: a typo in the net fails before anything is written, `config.json`
alone rebuilds the data and the net (ZCA and the batch size included), and the Python default is the fast recipe."""
import json, os, re, subprocess, sys
from pathlib import Path
import pytest

BIN = Path(sys.executable).parent
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}
TINY = ['--widths', '16,32', '--size', '16', '--precision', 'fp32']

def cli(cmd, *args, cwd):
    return subprocess.run([str(BIN/cmd), *map(str, args)], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)

def printed(out, what='valid accuracy'):
    return float(re.search(rf"{what} (?:\([^)]*\) )?([0-9.]+)", out).group(1))

def test_unknown_net_fails_before_anything_is_written(tmp_path):
    p = cli('allconv-train', '--arch', 'densenet-typo', '--out', 'D', cwd=tmp_path)
    assert p.returncode == 2 and 'Traceback' not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: Unknown DenseNet architecture') and 'did you mean' in lines[0], p.stderr
    assert not (tmp_path/'D').exists() or not any((tmp_path/'D').iterdir())

def test_zca_run_evaluates_to_its_own_accuracy(tmp_path):
    p = cli('allconv-train', '--data', 'digits', '--zca', '--epochs', '1', '--out', 'R', *TINY, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    cfg = json.loads((tmp_path/'R'/'config.json').read_text())
    assert cfg['zca'] is True and cfg['env']['precision'] == 'fp32' and cfg['env']['device'] == 'cpu'
    assert cfg['env']['cpu'] and cfg['env']['torch'] and cfg['env']['fastai']
    e = cli('allconv-eval', 'R', cwd=tmp_path)
    assert e.returncode == 0, e.stderr[-2000:]
    m = json.loads((tmp_path/'R'/'metrics.json').read_text())
    assert printed(e.stdout) == pytest.approx(m['valid_accuracy'], abs=1e-4)

def test_python_grid_with_zca_and_bs_evaluates_the_same(tmp_path):
    from allconv_fastai import table3, read_metrics
    from allconv_fastai.cli import allconv_eval
    table3(tmp_path, archs=('all-cnn-c',), lrs=(0.05,), data='digits', epochs=1, bn=True, dropout=False, widths='16,32',
           size=16, precision='fp32', zca=True, bs=32)
    run = tmp_path/'all-cnn-c-lr0.05'
    r = allconv_eval(run, checkpoint='last')
    assert r['valid_accuracy'] == pytest.approx(read_metrics(run)['valid_accuracy'], abs=1e-6)

@pytest.mark.slow
def test_fastai_idiom_reaches_95_percent():
    "The issue's one-liner: the Python default is the fast recipe."
    from fastai.metrics import accuracy
    from fastai.torch_core import set_seed
    from allconv_fastai import allcnn_learner, digits_dls
    set_seed(0)
    learn = allcnn_learner(digits_dls(), 'all-cnn-c', metrics=accuracy)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(8)
    acc = learn.validate()[1]
    print(f"valid accuracy after fit_one_cycle(8): {acc:.4f}")
    assert acc >= 0.95
