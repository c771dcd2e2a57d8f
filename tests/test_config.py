"""`RunConfig` and its `config.json`: the record alone rebuilds the data and the net (ZCA and the batch size included),
whether the run came from the command line or from Python, and it records the machine it ran on."""
import json
import pytest
from allconv_fastai.cli import train_main, eval_main
from conftest import printed

def test_zca_run_evaluates_to_its_own_accuracy(tmp_path, cli):
    p = cli(train_main, '--data', 'digits', '--zca', '--epochs', '1', '--out', 'R', '--widths', '16,32', '--size', '16',
            '--precision', 'fp32', cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    cfg = json.loads((tmp_path/'R'/'config.json').read_text())
    assert cfg['zca'] is True and cfg['env']['precision'] == 'fp32' and cfg['env']['device'] == 'cpu'
    assert cfg['env']['cpu'] and cfg['env']['torch'] and cfg['env']['fastai']
    e = cli(eval_main, 'R')
    assert e.returncode == 0, e.stderr[-2000:]
    m = json.loads((tmp_path/'R'/'metrics.json').read_text())
    assert printed(e.stdout) == pytest.approx(m['valid_accuracy'], abs=1e-4)

def test_python_grid_with_zca_and_bs_evaluates_the_same(tmp_path):
    from allconv_fastai import table3, read_metrics
    from allconv_fastai.cli import allconv_eval
    table3(tmp_path, archs=('all-cnn-c',), lrs=(0.05,), data='digits', epochs=1, bn=True, dropout=False, widths='16,32',
           size=16, precision='fp32', zca=True, bs=32)
    run = tmp_path/'all-cnn-c-lr0.05'
    assert json.loads((run/'config.json').read_text())['bs'] == 32
    r = allconv_eval(run, checkpoint='last')
    assert r['valid_accuracy'] == pytest.approx(read_metrics(run)['valid_accuracy'], abs=1e-6)
