"The prepared GPU check, run as `bench/gpu_check.sh --dry-run`: the same stages on the CPU at toy size write every result file."
import json, os, subprocess, sys
import xml.etree.ElementTree as ET
from pathlib import Path
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]

def test_dry_run_writes_every_result(tmp_path):
    out = tmp_path/'gpu-check'
    env = {**os.environ, 'PYTHON': sys.executable, 'OMP_NUM_THREADS': '1'}
    p = subprocess.run(['bash', str(REPO/'bench'/'gpu_check.sh'), '--dry-run', '--out', str(out)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert 'GPU: ' in p.stdout and 'torch ' in p.stdout and 'fastai ' in p.stdout   # versions and GPU printed first
    v = json.loads((out/'versions.json').read_text())
    assert v['dry_run'] and v['device'] == 'cpu' and v['torch'] and v['fastai'] and v['cpu']
    s = json.loads((out/'summary.json').read_text())
    assert {k: st['status'] for k,st in s['stages'].items()} == dict(tests='done', data='done', allcnn='done', table3='done',
                                                                  densenet='done'), s
    t = json.loads((out/'tests.json').read_text())
    assert t['returncode'] == 0 and t['failed'] == 0 and len(t['tests']) >= 10
    if not torch.cuda.is_available():   # each CUDA test skipped, saying why
        assert t['skipped'] == len(t['tests']) and all('needs a CUDA GPU' in c['message'] for c in t['tests'].values())
    ET.parse(out/'pytest_cuda.xml')
    a = json.loads((out/'allcnn_c.json').read_text())
    assert a['status'] == 'done' and a['epochs'] == 2 and 0 <= a['valid_accuracy'] <= 1 and 0 <= a['valid_accuracy_mirror_tta'] <= 1
    assert {'minutes_to_90', 'minutes_to_92.75'} <= set(a)
    e = pd.read_csv(out/'allcnn_c_epochs.csv')
    assert list(e.columns[:7]) == ['epoch', 'minutes', 'seconds', 'img_s', 'train_loss', 'valid_loss', 'accuracy']
    assert len(e) == 2 and (e.img_s > 0).all()
    run = out/'allcnn-c'   # trained through train_run: a run folder like any other, with the budget in its record
    assert json.loads((run/'config.json').read_text())['minutes'] > 0 and json.loads((run/'metrics.json').read_text())['epochs_trained'] == 2
    assert (run/'accuracy_vs_minutes.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert all((out/'table3'/n/'metrics.json').exists() for n in ('model-c', 'strided-cnn-c', 'convpool-cnn-c', 'all-cnn-c'))
    t3 = pd.read_csv(out/'table3_c.csv')
    assert list(t3.net) == ['model-c', 'strided-cnn-c', 'convpool-cnn-c', 'all-cnn-c'] and (t3.status == 'done').all()
    assert list(t3.paper_test_error) == [9.74, 10.19, 9.31, 9.08]
    assert json.loads((out/'table3_c.json').read_text())['protocol']
    d = pd.read_csv(out/'densenet.csv')
    assert set(d.variant) == {'plain', 'efficient'} and (d.img_s > 0).all()
    eff = d[d.variant == 'efficient']
    assert (eff.saved_vs_plain < 0.9).all()   # checkpointing saves fewer activations even on the toy net
    json.loads((out/'densenet.json').read_text())
    assert sorted(o.name for o in tmp_path.iterdir()) == ['gpu-check']   # nothing written outside --out
