"""Campaigns: a plan of runs that survives SIGKILL, resumes the interrupted run without redoing finished
epochs, files each finished run, and ends with the results of an uninterrupted campaign."""
import json, re, shutil, signal, subprocess, time
import numpy as np, pandas as pd
import pytest
from allconv_fastai.cli import eval_main, _campaign_main
from allconv_fastai.core import AllconvError
import forked
from conftest import ENV, save_image

PLAN = '''
from allconv_fastai.campaign import Plan
plan = Plan('tiny')
T = dict(widths='16,32', size=16, precision='fp32', tta=False, seed=0)
plan.add('a', epochs=1, lr=0.05, **T)
plan.add('sweep/b', epochs=4, lr=0.05, **T)
plan.add('c', epochs=1, lr=0.02, keep_weights=False, **T)
'''
RUNS = ('a', 'sweep/b', 'c')

GIT = {**ENV, 'GIT_AUTHOR_NAME': 'test', 'GIT_AUTHOR_EMAIL': 'test@example.com', 'GIT_COMMITTER_NAME': 'test',
       'GIT_COMMITTER_EMAIL': 'test@example.com', 'GIT_CONFIG_NOSYSTEM': '1', 'GIT_CONFIG_GLOBAL': '/dev/null'}

def git(cwd, *args) -> str: return subprocess.run(['git', *map(str, args)], cwd=cwd, env=GIT, capture_output=True, text=True, check=True).stdout

def campaign_argv(d, *extra): return ['-m', 'allconv_fastai.campaign', d/'tiny.py', '--results', d/'results', '--work', d/'work', *extra]

def kill_when(p, path, timeout=600):
    "SIGKILL `p` the moment `path` exists."
    t0 = time.monotonic()
    while not path.exists():
        assert p.poll() is None, p.communicate()[1][-3000:]
        assert time.monotonic() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()

def same_results(d, ref):
    for run in RUNS:
        m, r = metrics(d, run), metrics(ref, run)
        for k in ('valid_loss', 'valid_accuracy', 'epochs_trained', 'lr', 'diverged', 'weights_sha256'):
            assert m.get(k) == r.get(k), (run, k, m.get(k), r.get(k))
        if 'weights_sha256' in m:   # the per-image predictions filed with the weights: the same image by image
            pm, pr = (np.load(x/'results'/'tiny'/run/'predictions.npz') for x in (d, ref))
            assert (pm['pred'] == pr['pred']).all() and (pm['target'] == pr['target']).all() and pm['weights_sha256'] == m['weights_sha256'], run

def start(tmp, name):
    plan = tmp/'tiny.py'
    if not plan.exists(): plan.write_text(PLAN)
    d = tmp/name
    return d, forked.popen(['-m', 'allconv_fastai.campaign', plan, '--results', d/'results', '--work', d/'work'], env=ENV)

def finish(p, timeout=600):
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err[-3000:]
    return out

def metrics(d, run): return json.loads((d/'results'/'tiny'/run/'metrics.json').read_text())

@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    "An uninterrupted campaign of the three runs."
    tmp = tmp_path_factory.mktemp('campaign')
    d, p = start(tmp, 'ref')
    finish(p)
    return tmp, d

def test_killed_campaign_resumes_and_matches_uninterrupted(reference):
    tmp, ref = reference
    d, p = start(tmp, 'killed')
    kill_when(p, d/'work'/'tiny'/'sweep'/'b'/'last.pth')   # the second run has checkpointed its first epoch
    filed = d/'results'/'tiny'
    assert (filed/'a'/'metrics.json').exists() and not (filed/'sweep'/'b').exists()
    a_mtime = (filed/'a'/'metrics.json').stat().st_mtime_ns
    out = finish(start(tmp, 'killed')[1])
    assert (filed/'a'/'metrics.json').stat().st_mtime_ns == a_mtime       # the filed run was not redone
    b = metrics(d, 'sweep/b')
    assert b['resumed_from'] >= 1, b                                       # the interrupted run resumed ...
    assert f"at epoch {b['resumed_from']} of 4" in out
    assert pd.read_csv(filed/'sweep'/'b'/'history.csv').epoch.tolist() == [0, 1, 2, 3]   # ... each epoch once
    same_results(d, ref)                                                   # and the results are the uninterrupted ones
    assert 'weights_sha256' in b and 'weights_sha256' not in metrics(d, 'c')   # c files no weights (keep_weights=False)
    assert not list((d/'work').rglob('*.pth'))                             # no checkpoints left once filed
    assert sorted(p.name for p in (filed/'a').iterdir()) == ['config.json', 'curves.png', 'data.json', 'history.csv', 'lr.png',
                                                             'metrics.json', 'predictions.npz', 'weights.safetensors']
    assert not (filed/'c'/'predictions.npz').exists()                      # no weights, no predictions

def test_parked_run_continues_in_a_fresh_clone(reference, tmp_path):
    "Killed mid-run, parked and committed; a clone without the work folder continues from the parked checkpoint, and filing the run removes the parked copy."
    tmp, ref = reference
    repo = tmp_path/'repo'; repo.mkdir()
    (repo/'tiny.py').write_text(PLAN); (repo/'.gitignore').write_text('work/\n*.pth\n')   # as this project ignores *.pth
    git(repo, 'init', '-q'); git(repo, 'add', '.'); git(repo, 'commit', '-qm', 'the plan')
    p = forked.popen(campaign_argv(repo, '--commit'), env=GIT)
    kill_when(p, repo/'work'/'tiny'/'sweep'/'b'/'last.pth')
    q = forked.run(campaign_argv(repo, '--park', '--commit'), env=GIT)
    assert q.returncode == 0 and 'Parked sweep/b after epoch' in q.stdout, q.stderr[-2000:]
    parked = git(repo, 'ls-files', 'results/.parked').split()
    assert 'results/.parked/tiny/sweep/b/last.pth' in parked and 'results/.parked/tiny/sweep/b/config.json' in parked, parked
    assert not any(f.endswith(('.lock', 'best.pth')) for f in parked) and git(repo, 'status', '--porcelain') == ''   # all committed
    clone = tmp_path/'clone'; git(tmp_path, 'clone', '-q', repo, clone)
    assert not (clone/'work').exists()
    st = forked.run(campaign_argv(clone, '--status'), env=GIT)
    assert [l.split()[:2] for l in st.stdout.splitlines()[:3]] == [['filed', 'a'], ['parked', 'sweep/b'], ['waiting', 'c']], st.stdout
    done = re.search(r'parked +sweep/b .*\((\d) of 4 epochs done\)', st.stdout); assert done, st.stdout   # what is left of it
    out = finish(forked.popen(campaign_argv(clone, '--commit'), env=GIT))
    assert 'sweep/b: continuing from its parked checkpoint' in out, out
    b = metrics(clone, 'sweep/b')
    assert b['resumed_from'] >= 1 and f"at epoch {b['resumed_from']} of 4" in out, b   # no finished epoch redone
    assert b['resumed_from'] == int(done.group(1))   # --status counted the parked epochs
    assert pd.read_csv(clone/'results'/'tiny'/'sweep'/'b'/'history.csv').epoch.tolist() == [0, 1, 2, 3]
    same_results(clone, ref)
    assert not (clone/'results'/'.parked').exists()   # the parked copy and the folders it alone filled are gone
    assert git(clone, 'ls-files', 'results/.parked') == '' and git(clone, 'status', '--porcelain') == ''   # removal committed
    filed = git(clone, 'log', '--format=%H', '--', 'results/tiny/sweep/b/metrics.json').split()
    assert len(filed) == 1 and 'D\tresults/.parked/tiny/sweep/b/last.pth' in git(clone, 'show', '--name-status', '--format=', filed[0])
    stale = clone/'results'/'.parked'/'tiny'/'a'   # as if a campaign was killed between filing a run and removing its parked copy
    shutil.copytree(clone/'results'/'tiny'/'a', stale); (stale/'last.pth').write_bytes(b'stale')
    git(clone, 'add', '-f', stale); git(clone, 'commit', '-qm', 'a stale parked copy')
    finish(forked.popen(campaign_argv(clone, '--commit'), env=GIT))
    assert not (clone/'results'/'.parked').exists() and git(clone, 'ls-files', 'results/.parked') == '' and git(clone, 'status', '--porcelain') == ''

def test_second_campaign_of_one_plan_is_refused(reference):
    tmp, ref = reference
    d, p = start(tmp, 'busy')
    lock = d/'work'/'tiny'/'.lock'
    t0 = time.monotonic()
    while not (lock.exists() and lock.read_text().strip()):
        assert time.monotonic() - t0 < 300 and p.poll() is None
        time.sleep(0.05)
    p.send_signal(signal.SIGSTOP)   # holds the lock, stopped, so it cannot finish the plan before the second starts
    try:
        q = start(tmp, 'busy')[1]
        out, err = q.communicate(timeout=300)
    finally: p.kill(); p.wait()
    assert q.returncode == 2 and err.count('\n') == 1, err
    assert f"is in use by process {p.pid}" in err

def test_status_lists_runs_and_time_left(reference, cli):
    tmp, ref = reference
    p = cli(_campaign_main, tmp/'tiny.py', '--status', '--results', ref/'results', '--work', ref/'work')
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert [l.split()[:2] for l in lines[:3]] == [['filed', 'a'], ['filed', 'sweep/b'], ['filed', 'c']]
    assert 'Plan tiny: 3 of 3 runs filed, 0 left' in lines[-1]

def test_predictions_flag_writes_missing_predictions(reference, tmp_path, cli):
    "--predictions: the filed runs with weights whose predictions.npz is missing get theirs again, the same image by image; the rest are left."
    tmp, ref = reference
    res = tmp_path/'results'; shutil.copytree(ref/'results', res)
    kept = np.load(res/'tiny'/'a'/'predictions.npz')['pred']
    (res/'tiny'/'a'/'predictions.npz').unlink()
    b_mtime = (res/'tiny'/'sweep'/'b'/'predictions.npz').stat().st_mtime_ns
    p = cli(_campaign_main, tmp/'tiny.py', '--predictions', '--results', res, '--work', tmp_path/'work')
    assert p.returncode == 0 and 'Predictions of a written.' in p.stdout, p.stdout + p.stderr
    assert (np.load(res/'tiny'/'a'/'predictions.npz')['pred'] == kept).all()
    assert (res/'tiny'/'sweep'/'b'/'predictions.npz').stat().st_mtime_ns == b_mtime and not (res/'tiny'/'c'/'predictions.npz').exists()
    p = cli(_campaign_main, tmp/'tiny.py', '--predictions', '--results', res, '--work', tmp_path/'work')
    assert p.returncode == 0 and 'every filed run with weights has its predictions' in p.stdout, p.stdout
    # predictions of other weights are made again; a run whose data is gone fails alone, named, and the command says so
    z = dict(np.load(res/'tiny'/'sweep'/'b'/'predictions.npz')); z['weights_sha256'] = np.array('0'*64)
    np.savez_compressed(res/'tiny'/'sweep'/'b'/'predictions.npz', **z)
    cj = res/'tiny'/'a'/'config.json'; cj.write_text(json.dumps({**json.loads(cj.read_text()), 'data': str(tmp_path/'gone')}))
    (res/'tiny'/'a'/'predictions.npz').unlink()
    p = cli(_campaign_main, tmp/'tiny.py', '--predictions', '--results', res, '--work', tmp_path/'work')
    assert p.returncode == 2 and 'Predictions of sweep/b written.' in p.stdout and 'The predictions of a were not written' in p.stdout, p.stdout + p.stderr
    assert 'were not written: a.' in p.stderr and not (res/'tiny'/'a'/'predictions.npz').exists(), p.stderr
    assert str(np.load(res/'tiny'/'sweep'/'b'/'predictions.npz')['weights_sha256']) == metrics(ref, 'sweep/b')['weights_sha256']

def test_filed_run_scores_a_test_split_held_elsewhere(reference, tmp_path, cli):
    "allconv-eval FILED_RUN --data D --split test --json: the filed bf16 weights on a test/ folder made here, without training images."
    from allconv_fastai.config import RunConfig
    from allconv_fastai.build import run_dls
    tmp, ref = reference
    run = ref/'results'/'tiny'/'a'
    assert not list(run.glob('*.pth'))                                     # a filed run: weights.safetensors only
    dv = run_dls(RunConfig(data='digits', size=16, seed=0))                # its validation images, as PNGs in test/
    for i,(x,y) in enumerate(zip(dv.valid_ds.x.cpu(), dv.valid_ds.y.cpu())):
        (tmp_path/'copy'/'test'/dv.vocab[int(y)]).mkdir(parents=True, exist_ok=True)
        save_image(tmp_path/'copy'/'test'/dv.vocab[int(y)]/f'{i}.png', x)
    p = cli(eval_main, run, '--data', tmp_path/'copy', '--split', 'test', '--json')
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout)
    assert r['weights'].startswith('weights.safetensors') and set(r) >= {'test_loss', 'test_accuracy'}
    m = metrics(ref, 'a')
    assert abs(r['test_accuracy'] - m['valid_accuracy']) <= 0.02, (r, m['valid_accuracy'])   # same images, bf16-rounded weights

def test_deadline_stops_and_parks(tmp_path):
    "`--until` already past with `--park`: nothing more is trained, the unfinished run is parked, and the exit is 0."
    (tmp_path/'tiny.py').write_text(PLAN)
    d, p = start(tmp_path, 'late')
    kill_when(p, d/'work'/'tiny'/'sweep'/'b'/'last.pth')   # a filed run, and one with a checkpointed epoch
    hist = (d/'work'/'tiny'/'sweep'/'b'/'history.csv').read_text()
    out = finish(forked.popen(['-m', 'allconv_fastai.campaign', tmp_path/'tiny.py', '--results', d/'results', '--work', d/'work',
                              '--until', '+0', '--park'], env=ENV))
    assert 'stopped at its deadline' in out and 'Parked sweep/b' in out, out
    assert (d/'work'/'tiny'/'sweep'/'b'/'history.csv').read_text() == hist   # no epoch trained after the deadline
    assert (d/'results'/'.parked'/'tiny'/'sweep'/'b'/'last.pth').exists() and not (d/'results'/'tiny'/'sweep'/'b').exists()

def test_run_stops_at_its_deadline(tmp_path):
    "A run whose deadline has passed stops before its first epoch, without an error, and resumes later."
    from allconv_fastai.train import train_run
    from allconv_fastai.runs import Deadline, RunStopped
    run, kw = tmp_path/'run', dict(data='digits', widths='16,32', size=16, epochs=2, precision='fp32', tta=False)
    with pytest.raises(RunStopped) as e: train_run(run, cbs=[Deadline(time.time() - 1)], **kw)
    assert e.value.signum is None and e.value.exit_code == 0 and 'stopped for its deadline' in str(e.value), e.value
    assert not (run/'last.pth').exists() and not (run/'metrics.json').exists()
    cfg = json.loads((run/'config.json').read_text())
    assert 'starts' not in cfg and 'env' not in cfg, cfg   # a start that trained nothing is not one of the run's machines
    assert train_run(run, resume=True)['epochs_trained'] == 2
    cfg = json.loads((run/'config.json').read_text())
    assert [s['start_epoch'] for s in cfg['starts']] == [0]
    assert cfg['env'] == {k: v for k,v in cfg['starts'][0].items() if k not in ('start_epoch', 'time')}   # the start that trained is the first
    with pytest.raises(AllconvError, match='wall-clock budget'): train_run(tmp_path/'budget', cbs=[Deadline(time.time() + 60)], **{**kw, 'minutes': 1})
    assert not (tmp_path/'budget').exists()

def test_until_with_park_parks_after_sigterm_too(tmp_path):
    "SIGTERM to `--until ... --park` mid-run: the step finishes, the run is parked, and the exit status is the signal's."
    (tmp_path/'tiny.py').write_text(PLAN)
    d = tmp_path/'term'
    p = forked.popen(['-m', 'allconv_fastai.campaign', tmp_path/'tiny.py', '--results', d/'results', '--work', d/'work',
                      '--until', '+600', '--park'], env=ENV)
    t0 = time.monotonic()
    while not (d/'work'/'tiny'/'sweep'/'b'/'last.pth').exists():
        assert p.poll() is None, p.communicate()[1][-3000:]
        assert time.monotonic() - t0 < 600, "the second run never checkpointed"
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert 'Parked sweep/b' in out and (d/'results'/'.parked'/'tiny'/'sweep'/'b'/'last.pth').exists(), out
