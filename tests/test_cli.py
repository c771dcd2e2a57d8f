"""The console commands on the bundled digits with a narrow net and tiny epochs: what they write and print, how they
refuse a setting (one `error:` line, exit status 2, nothing written), and their `--help`. Each is called in this
process through its entry point, except where the process itself is the point (a kill, `--help` without torch)."""
import json, subprocess, sys
import pandas as pd
import pytest
from allconv_fastai.cli import train_main, eval_main, main
from conftest import BIN, command, one_line, printed, start, wait_for

SMALL = ['--widths', '16,32', '--size', '16', '--precision', 'fp32']

def test_train_writes_a_run_and_eval_reads_it(tmp_path, cli):
    p = cli(train_main, '--epochs', '2', '--out', 'runs/c', *SMALL, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    d = tmp_path/'runs'/'c'
    for f in ('config.json', 'history.csv', 'last.pth', 'best.pth', 'metrics.json', 'curves.png', 'lr.png'):
        assert (d/f).stat().st_size > 0, f
    m = json.loads((d/'metrics.json').read_text())
    assert 'digits' in p.stdout and 'digits' in m['data_name']          # results are labelled with the data
    assert printed(p.stdout) == pytest.approx(m['valid_accuracy'], abs=1e-4)
    assert 0.3 < m['valid_accuracy'] <= 1, m                           # 2 epochs on the digits learn something
    assert printed(p.stdout, 'valid accuracy with TTA') == pytest.approx(m['valid_tta_accuracy'], abs=1e-4)
    assert list(pd.read_csv(d/'history.csv').epoch) == [0, 1]
    assert json.loads((d/'config.json').read_text())['widths'] == [16, 32]
    assert '\r' not in p.stdout                                         # no progress-bar noise when not on a terminal

    e = cli(eval_main, 'runs/c', '--tta')
    assert e.returncode == 0, e.stderr
    assert printed(e.stdout) == pytest.approx(m['valid_accuracy'], abs=1e-4)   # the final weights by default, as metrics.json
    assert 0 < printed(e.stdout, 'valid accuracy with TTA') <= 1
    b = cli(eval_main, 'runs/c', '--checkpoint', 'best', '--json')
    assert b.returncode == 0, b.stderr
    rb,h = json.loads(b.stdout),pd.read_csv(d/'history.csv')
    assert rb['weights'] == f"best.pth (epoch {int(h.accuracy.idxmax())})"    # best.pth: the first epoch with the best accuracy
    assert rb['valid_accuracy'] == pytest.approx(h.accuracy.max(), abs=1e-4)

    # a finished run is never overwritten
    again = cli(train_main, '--epochs', '2', '--out', 'runs/c', *SMALL)
    assert again.returncode == 2 and 'already holds a finished run' in again.stderr
    assert (d/'metrics.json').read_text() == json.dumps(m, indent=1)

def test_resume_continues_a_killed_run(tmp_path, cli):
    "SIGKILL after the first checkpoint (a real process), then `--resume` finishes the run with one continuous history."
    proc = start('allconv-train', '--epochs', '6', '--out', 'runs/r', '--no-tta', *SMALL, cwd=tmp_path)   # 6: not over before the kill, even on a busy machine
    last = tmp_path/'runs'/'r'/'last.pth'
    try: wait_for(last.exists, proc, 'first epoch checkpointed')
    finally: proc.kill(); proc.communicate()
    d = last.parent
    if (d/'metrics.json').exists(): pytest.skip("the run finished before it could be killed")
    done = len(pd.read_csv(d/'history.csv'))
    p = cli(train_main, '--resume', 'runs/r', cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"Resuming runs/r at epoch {done} of 6" in p.stdout
    assert list(pd.read_csv(d/'history.csv').epoch) == list(range(6))   # one continuous history
    assert json.loads((d/'metrics.json').read_text())['resumed_from'] == done

def test_until_stops_a_run_by_its_deadline(tmp_path, cli):
    "`--until` already past: the run stops before its first epoch with exit status 0 and says how to continue; `--resume` finishes it."
    p = cli(train_main, '--epochs', '2', '--out', 'runs/u', '--until', '+0', '--no-tta', *SMALL, cwd=tmp_path)
    assert p.returncode == 0 and 'stopped for its deadline' in p.stderr and '--resume runs/u' in p.stderr, p.stderr
    assert not (tmp_path/'runs'/'u'/'metrics.json').exists()
    bad = cli(train_main, '--epochs', '2', '--out', 'runs/v', '--until', 'soon', *SMALL)
    assert bad.returncode == 2 and one_line(bad.stderr) == ["error: --until 'soon' is not a time. Fix: give HH:MM (e.g. 17:30), an ISO "
                                                            "date and time (2026-12-04T17:30), or +MINUTES (e.g. +90)."], bad.stderr
    assert not (tmp_path/'runs'/'v').exists()   # refused before anything was written
    r = cli(train_main, '--resume', 'runs/u')
    assert r.returncode == 0 and json.loads((tmp_path/'runs'/'u'/'metrics.json').read_text())['epochs_trained'] == 2, r.stderr

BAD = {  # the options, and what the one error line must name
    'unknown net': (['--arch', 'densenet-typo'], ['Unknown DenseNet architecture', 'did you mean']),
    'unknown All-CNN': (['--arch', 'all-cnn-x'], ['all-cnn-c']),
    'negative lr': (['--lr', '-0.1'], ['pass `lr` > 0']),
    'infinite lr': (['--lr', 'inf'], []),
    'missing data': (['--data', '/no/such/cifar'], ['No data at /no/such/cifar']),
    'unknown dataset': (['--data', 'imagenet'], ['Unknown dataset']),
    '--size 3000': (['--size', '3000'], []),
    '--valid 0.9999': (['--valid', '0.9999'], []),
    '--cutout 1000': (['--cutout', '1000'], []),
    '--widths 0,0': (['--widths', '0,0'], []),
    'dangling --out link': (['--out', 'link'], []),
    'looping --out link': (['--out', 'loop'], ['symbolic link to nothing']),
    '--out at a file': (['--out', 'f'], ['is a file, not a folder', '--out']),
    '--out under a file': (['--out', 'f/run'], ['is a file, not a folder']),
}

@pytest.mark.parametrize('bad', BAD)
def test_impossible_settings_are_one_line_and_write_nothing(tmp_path, cli, bad):
    args, needles = BAD[bad]
    (tmp_path/'link').symlink_to(tmp_path/'nowhere')
    (tmp_path/'loop').symlink_to(tmp_path/'loop2'); (tmp_path/'loop2').symlink_to(tmp_path/'loop')
    (tmp_path/'f').write_text('x')
    p = cli(train_main, '--epochs', '1', *args, cwd=tmp_path)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    err = one_line(p.stderr)
    assert len(err) == 1 and err[0].startswith('error: ') and 'Fix: ' in err[0] and 'Traceback' not in p.stderr, err
    for n in needles: assert n in err[0], err
    assert sorted(o.name for o in tmp_path.iterdir()) == ['f', 'link', 'loop', 'loop2'] and (tmp_path/'f').read_text() == 'x'

def test_help_lists_every_option(cli):
    p = cli(train_main, '--help')
    assert p.returncode == 0
    for o in ('--arch', '--data', '--schedule', '--epochs', '--lr', '--wd', '--bs', '--milestones', '--precision', '--seed',
              '--valid', '--n-train', '--recipe', '--zca', '--cutout', '--bn, --no-bn', '--dropout, --no-dropout', '--residual', '--no-tta', '--resume', '--out'):
        assert o in p.stdout, o
    assert 'cifar10-jpg --recipe shipped --valid 5000' in p.stdout       # how to run the shipped net's job
    assert 'Batch size' in p.stdout                                        # help text from the docments

def test_import_and_help_answer_without_torch_or_fastai(tmp_path):
    "In a fresh interpreter: `import allconv_fastai` prints nothing, and every command's --help is the stored text, with neither torch nor fastai imported."
    code = ("import sys, contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()) as o: import allconv_fastai\n"
            "assert o.getvalue() == '', o.getvalue()\n"
            "from allconv_fastai.cli import train_main, eval_main, table3_main, predict_main, _campaign_main\n"
            "for f in (train_main, eval_main, table3_main, predict_main, _campaign_main):\n"
            "    with contextlib.redirect_stdout(io.StringIO()) as o:\n"
            "        try: f(['--help'])\n"
            "        except SystemExit as e: assert e.code == 0, e.code\n"
            "    assert o.getvalue().startswith('usage: allconv-'), o.getvalue()[:200]\n"
            "print(sorted(m for m in ('torch', 'fastai', 'torchvision') if m in sys.modules))")
    p = subprocess.run([sys.executable, '-W', 'ignore', '-c', code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.strip() == '[]', (p.stdout, p.stderr[-2000:])
    assert (BIN/'allconv-campaign').exists()   # the installed script too
    q = command('allconv-campaign', '--help', cwd=tmp_path, fresh=True)
    assert q.returncode == 0 and 'usage: allconv-campaign' in q.stdout and '--status' in q.stdout, q.stderr

def test_module_dispatch(tmp_path, capsys, monkeypatch):
    "`python -m allconv_fastai.cli CMD`: an unknown command, and a known one's own refusal, each one line."
    monkeypatch.chdir(tmp_path)
    assert main(['fly']) == 2 and capsys.readouterr().err.strip().splitlines()[-1].startswith("error: unknown command 'fly'")
    assert main(['eval', 'nowhere']) == 2 and 'No run at nowhere' in capsys.readouterr().err.strip().splitlines()[-1]
