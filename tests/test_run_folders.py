"""Run folders that give the right result or one clear line: one process per folder, a resume from any state a crash
can leave, SIGTERM/SIGHUP that stop cleanly, the user's umask, a resume that refuses settings other than the run's,
and a Table 3 grid that reruns to the uninterrupted result. (Impossible settings on the command line: test_cli.py.)"""
import hashlib, json, os, shutil, signal
import pandas as pd
import pytest
from allconv_fastai.cli import train_main, eval_main
from allconv_fastai.train import train_run
from allconv_fastai.tables import table3
from allconv_fastai.checkpoint import load_checkpoint, save_checkpoint
from allconv_fastai.config import RunConfig
from allconv_fastai.build import run_learner, run_dls
from conftest import TINY as TINY_ARGS, one_line, start, wait_for

TINY = dict(data='digits', widths='16,32', size=16, precision='fp32', seed=0)
SAME = ('valid_loss', 'valid_accuracy', 'valid_tta_accuracy', 'epochs_trained', 'diverged', 'weights')

CLI_TINY = [*TINY_ARGS, '--seed', '0']

def cli(*args): return start('allconv-train', *args)   # a real process: these tests signal, kill and race it

@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    "An uninterrupted 2-epoch run: the result every crash state must resume to."
    d = tmp_path_factory.mktemp('ref')/'run'
    return d, train_run(d, **TINY, epochs=2)

def _hist(d): return pd.read_csv(d/'history.csv').drop(columns=['minutes', 'load', 'train_loss'])

CRASH_STATES = {
    'final checkpoint, no metrics.json': lambda d: (d/'metrics.json').unlink(),
    'partial metrics.json': lambda d: (d/'metrics.json').write_text(json.dumps({'arch': 'all-cnn-c', 'valid_accuracy': 0.5})),
    'garbage metrics.json': lambda d: (d/'metrics.json').write_bytes(b'{"valid_acc'),
    'history.csv deleted': lambda d: [(d/f).unlink() for f in ('history.csv', 'metrics.json')],
    'history.csv empty': lambda d: [(d/'history.csv').write_text(''), (d/'metrics.json').unlink()],
    'history.csv garbage': lambda d: [(d/'history.csv').write_bytes(b'\x00\x01garbage\n,,\n'), (d/'metrics.json').unlink()],
}

@pytest.mark.parametrize('state', CRASH_STATES)
def test_crash_state_resumes_to_the_uninterrupted_result(tmp_path, reference, state):
    ref, m0 = reference
    d = tmp_path/'run'; shutil.copytree(ref, d)
    CRASH_STATES[state](d)
    sha = hashlib.sha256((d/'last.pth').read_bytes()).hexdigest()
    m = train_run(d, resume=True)
    assert m['resumed_from'] == 2 and hashlib.sha256((d/'last.pth').read_bytes()).hexdigest() == sha   # nothing trained again
    assert {k: m[k] for k in SAME} == {k: m0[k] for k in SAME}
    assert json.loads((d/'metrics.json').read_text())['valid_accuracy'] == m0['valid_accuracy']
    pd.testing.assert_frame_equal(_hist(d), _hist(ref), check_exact=True)   # rebuilt from the checkpoint's record

@pytest.mark.parametrize('epoch', ['abc', -5, None, 7])
def test_bad_checkpoint_record_is_one_line(tmp_path, reference, capsys, epoch):
    ref, _ = reference
    d = tmp_path/'run'; shutil.copytree(ref, d); (d/'metrics.json').unlink()
    st = load_checkpoint(d/'last.pth')
    learn = run_learner(RunConfig(**TINY, epochs=2), run_dls(RunConfig(**TINY, epochs=2)))
    save_checkpoint(d/'last.pth', learn.model, **{**st['meta'], 'epoch': epoch})
    assert train_main(['--resume', str(d)]) == 2
    err = one_line(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith('error: Checkpoint') and 'Fix:' in err[0], err

def test_two_starts_into_one_out(tmp_path):
    run = tmp_path/'race'
    a = cli('--out', run, '--epochs', 200, *CLI_TINY)
    try:
        started = lambda: (run/'config.json').exists() and b'"starts"' in (run/'config.json').read_bytes()   # A's own last write to it
        wait_for(lambda: started() and (run/'.lock').exists() and (run/'.lock').read_text().strip(), a, 'A started')
        cfg = (run/'config.json').read_bytes()
        b = cli('--out', run, '--epochs', 3, '--lr', 0.2, *CLI_TINY)
        out, err = b.communicate(timeout=300)
        assert b.returncode == 2 and len(one_line(err)) == 1 and f'in use by process {a.pid}' in err, err
        assert (run/'config.json').read_bytes() == cfg and a.poll() is None   # A's files intact, A still training
    finally: a.kill(); a.wait()

def test_two_resumes_of_one_run(tmp_path):
    run = tmp_path/'run'
    a = cli('--out', run, '--epochs', 200, *CLI_TINY)
    wait_for(lambda: (run/'last.pth').exists(), a, 'first epoch checkpointed')
    a.kill(); a.wait()
    r1 = cli('--resume', run)
    try:
        wait_for(lambda: (run/'.lock').exists() and (run/'.lock').read_text().strip() == str(r1.pid), r1, 'first resume holds the lock')
        r2 = cli('--resume', run)
        out, err = r2.communicate(timeout=300)
        assert r2.returncode == 2 and len(one_line(err)) == 1 and f'in use by process {r1.pid}' in err, err
    finally: r1.kill(); r1.wait()

@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGHUP])
def test_signal_finishes_the_step_and_says_how_to_resume(tmp_path, sig):
    run = tmp_path/'run'
    p = cli('--out', run, '--epochs', 200, *CLI_TINY)
    wait_for(lambda: (run/'history.csv').exists(), p, 'first epoch written')
    p.send_signal(sig)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 128 + sig, (p.returncode, err[-2000:])
    lines = one_line(err)
    assert len(lines) == 1 and lines[0].startswith('stopped:') and f'allconv-train --resume {run}' in lines[0], lines
    e = load_checkpoint(run/'last.pth')['meta']['epoch']
    assert pd.read_csv(run/'history.csv').epoch.tolist() == list(range(e+1))   # history and checkpoint agree
    assert not (run/'metrics.json').exists()

def test_run_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try: train_run(tmp_path/'run', **TINY, epochs=1, tta=False)
    finally: os.umask(old)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in (tmp_path/'run').iterdir()}
    assert set(modes.values()) == {'0o644'}, modes

def test_resume_compares_the_options_typed(tmp_path, capsys):
    run = tmp_path/'run'
    assert train_main(['--out', str(run), '--arch', 'model-c', '--epochs', '1', *TINY_ARGS, '--seed', '7', '--no-tta']) == 0
    capsys.readouterr()
    assert train_main(['--resume', str(run), '--seed', '42']) == 2     # 42 is the default, and still not this run's seed
    err = one_line(capsys.readouterr().err)
    assert len(err) == 1 and "--seed 42 conflicts with the run's 7" in err[0], err
    (run/'metrics.json').unlink()                                      # an unfinished run: a resume would train
    assert train_main(['--resume', str(run), '--arch', 'all-cnn-c']) == 2
    err = one_line(capsys.readouterr().err)
    assert len(err) == 1 and "--arch all-cnn-c conflicts with the run's 'model-c'" in err[0], err
    assert train_main(['--resume', str(run), '--seed', '7']) == 0      # the run's own value is no conflict

def test_negative_maps_is_one_line(tmp_path, reference, capsys):
    assert eval_main([str(reference[0]), '--maps', '-1']) == 2
    err = one_line(capsys.readouterr().err)
    assert len(err) == 1 and '--maps must be a whole number >= 0' in err[0], err

def test_table3_grid_resumed_equals_uninterrupted(tmp_path):
    kw = dict(archs=('all-cnn-c',), lrs=(0.1,), data='digits', epochs=2, widths='16,32', size=16, precision='fp32', seed=0)
    a = table3(tmp_path/'a', **kw)
    shutil.copytree(tmp_path/'a', tmp_path/'b')
    for f in ('all-cnn-c-lr0.1/metrics.json', 'results.json', 'table3.md'): (tmp_path/'b'/f).unlink()
    b = table3(tmp_path/'b', **kw)   # the crash left a final checkpoint without metrics: the rerun evaluates it and finishes
    pd.testing.assert_frame_equal(a, b)
    assert (tmp_path/'b'/'table3.md').read_text() == (tmp_path/'a'/'table3.md').read_text() and b.selected_lr.tolist() == [0.1]

def test_paper_schedule_trains_with_the_gamma_given(tmp_path):
    "--schedule paper --gamma 0.2: the paper's milestones scaled to 4 epochs, (2, 3, 3), each multiplying the lr by 0.2."
    assert train_main(['--out', str(tmp_path/'run'), '--schedule', 'paper', '--gamma', '0.2', '--epochs', '4', '--lr', '0.05',
                       '--no-tta', *CLI_TINY]) == 0
    cfg = json.loads((tmp_path/'run'/'config.json').read_text())
    assert (cfg['recipe'], cfg['gamma'], cfg['milestones']) == ('paper', 0.2, [2, 3, 3])
    lrs = pd.read_csv(tmp_path/'run'/'history.csv').lr.tolist()
    assert lrs == pytest.approx([0.05, 0.05, 0.05*0.2, 0.05*0.2**3], rel=1e-6), lrs

def test_resumed_run_lists_each_start(tmp_path, reference):
    ref, _ = reference
    d = tmp_path/'run'; shutil.copytree(ref, d); (d/'metrics.json').unlink()
    train_run(d, resume=True)
    starts = json.loads((d/'config.json').read_text())['starts']
    assert [s['start_epoch'] for s in starts] == [0, 2] and all(s['cpu'] and s['threads'] for s in starts), starts


@pytest.mark.parametrize('left', ['a cut-short write', 'config.json and data.json'])
def test_a_start_killed_before_its_first_epoch_blocks_nothing(tmp_path, left):
    "SIGKILL can leave atomic_write's temporary file, or a run's record without any epoch: a new start replaces them."
    run = tmp_path/'run'; run.mkdir()
    if left == 'a cut-short write': (run/'.config.json.k3y9.tmp').write_text('{"arch": "all-')
    else:
        cfg = RunConfig(**TINY, epochs=1, tta=False)
        from allconv_fastai.config import save_config
        from allconv_fastai.build import save_data_record
        save_config(run/'config.json', cfg); save_data_record(run, run_dls(cfg))
    m = train_run(run, **TINY, epochs=1, tta=False)
    assert m['epochs_trained'] == 1 and sorted(p.name for p in run.iterdir() if p.name.endswith('.tmp')) == []

def test_a_wall_clock_budget_is_a_run_setting(tmp_path):
    "`minutes`: one-cycle stretched over the whole epochs that fit (at most `epochs`), recorded; its plan cannot be continued."
    from allconv_fastai.core import AllconvError
    run = tmp_path/'run'
    m = train_run(run, **TINY, epochs=1000, minutes=0.1, tta=False)
    assert 1 <= m['epochs_trained'] < 1000 and m['weights'] == f"last.pth (epoch {m['epochs_trained']-1})"
    assert json.loads((run/'config.json').read_text())['minutes'] == 0.1
    (run/'metrics.json').unlink()
    with pytest.raises(AllconvError, match='cannot be continued'): train_run(run, resume=True)
    with pytest.raises(AllconvError, match='applies to the one-cycle schedule'): RunConfig(minutes=5, schedule='paper')

def test_adam_run_resumes(tmp_path):
    "A run with fastai's Adam (hyper-parameters in a fastcore `L`) checkpoints plain lists, so that it can be resumed."
    ref = tmp_path/'ref'
    m0 = train_run(ref, **TINY, epochs=2, opt='adam', lr=0.003, wd=0.01)
    assert isinstance(load_checkpoint(ref/'last.pth')['opt']['hypers'], list)
    d = tmp_path/'run'; shutil.copytree(ref, d); (d/'metrics.json').unlink()
    m = train_run(d, resume=True)
    assert {k: m[k] for k in SAME} == {k: m0[k] for k in SAME}
