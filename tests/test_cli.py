"The console commands, run as a user would from a shell, on the bundled digits with a narrow net and tiny epochs."
import json, os, re, signal, subprocess, sys, time
from pathlib import Path
import pandas as pd
import pytest

BIN = Path(sys.executable).parent
TINY = ['--widths', '16,32', '--size', '16', '--precision', 'fp32']

def run(cmd, cwd, **kw):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    exe = [str(BIN/cmd[0])] if (BIN/cmd[0]).exists() else [sys.executable, '-m', 'allconv_fastai.cli', cmd[0].split('-')[-1]]
    return subprocess.run(exe + [str(o) for o in cmd[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, **kw)

def printed(out, what='valid accuracy'):
    "The accuracy a command printed after `what`."
    return float(re.search(rf"{what} (?:\([^)]*\) )?([0-9.]+)", out).group(1))

def test_train_writes_a_run_and_eval_reads_it(tmp_path):
    p = run(['allconv-train', '--epochs', '2', '--out', 'runs/c', *TINY], tmp_path)
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
    assert '\r' not in p.stdout                                         # no progress-bar noise in a pipe

    e = run(['allconv-eval', 'runs/c', '--tta'], tmp_path)
    assert e.returncode == 0, e.stderr
    best = max(pd.read_csv(d/'history.csv').accuracy)                  # best.pth holds the best epoch
    assert printed(e.stdout) == pytest.approx(best, abs=1e-4)
    assert 0 < printed(e.stdout, 'valid accuracy with TTA') <= 1

    # a finished run is never overwritten
    again = run(['allconv-train', '--epochs', '2', '--out', 'runs/c', *TINY], tmp_path)
    assert again.returncode == 2 and 'already holds a finished run' in again.stderr
    assert (d/'metrics.json').read_text() == json.dumps(m, indent=1)

def test_resume_continues_a_killed_run(tmp_path):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    args = [str(BIN/'allconv-train'), '--epochs', '3', '--out', 'runs/r', '--no-tta', *TINY]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path/'runs'/'r'/'last.pth'
    t0 = time.time()
    while not last.exists() and proc.poll() is None and time.time()-t0 < 300: time.sleep(0.2)
    proc.send_signal(signal.SIGKILL); proc.wait()
    d = last.parent
    if (d/'metrics.json').exists(): pytest.skip("the run finished before it could be killed")
    done = len(pd.read_csv(d/'history.csv'))
    p = run(['allconv-train', '--resume', 'runs/r'], tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"Resuming runs/r at epoch {done} of 3" in p.stdout
    assert list(pd.read_csv(d/'history.csv').epoch) == [0, 1, 2]      # one continuous history
    assert json.loads((d/'metrics.json').read_text())['resumed_from'] == done

@pytest.mark.parametrize('args,msg', [
    (['--arch', 'all-cnn-x'], 'all-cnn-c'),
    (['--lr', '-0.1'], 'pass `lr` > 0'),
    (['--data', '/no/such/cifar'], 'No data at /no/such/cifar'),
    (['--data', 'imagenet'], 'Unknown dataset'),
])
def test_bad_arguments_fail_in_one_line(tmp_path, args, msg):
    p = run(['allconv-train', *args], tmp_path)
    assert p.returncode == 2
    assert 'Traceback' not in p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and msg in last and 'Fix: ' in last, p.stderr
    assert not (tmp_path/'runs').exists()                               # nothing written

def test_help_lists_every_option(tmp_path):
    p = run(['allconv-train', '--help'], tmp_path)
    assert p.returncode == 0
    for o in ('--arch', '--data', '--schedule', '--epochs', '--lr', '--wd', '--bs', '--milestones', '--precision', '--seed',
              '--valid', '--n-train', '--recipe', '--zca', '--cutout', '--bn, --no-bn', '--dropout, --no-dropout', '--residual', '--no-tta', '--resume', '--out'):
        assert o in p.stdout, o
    assert 'cifar10-jpg --schedule one-cycle --epochs 30' in p.stdout       # how to run the real job
    assert 'Batch size' in p.stdout                                        # help text from the docments

def test_help_answers_without_importing_torch_or_fastai(tmp_path):
    "Every console command's --help, in a fresh interpreter: the stored text, and neither torch nor fastai imported."
    code = ("import sys, contextlib, io\n"
            "from allconv_fastai.cli import train_main, eval_main, table3_main, predict_main, _campaign_main\n"
            "for f in (train_main, eval_main, table3_main, predict_main, _campaign_main):\n"
            "    with contextlib.redirect_stdout(io.StringIO()) as o:\n"
            "        try: f(['--help'])\n"
            "        except SystemExit as e: assert e.code == 0, e.code\n"
            "    assert o.getvalue().startswith('usage: allconv-'), o.getvalue()[:200]\n"
            "print(sorted(m for m in ('torch', 'fastai', 'torchvision') if m in sys.modules))")
    p = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.strip() == '[]', (p.stdout, p.stderr[-2000:])
    if (BIN/'allconv-campaign').exists():   # the installed script too
        q = run(['allconv-campaign', '--help'], tmp_path)
        assert q.returncode == 0 and 'usage: allconv-campaign' in q.stdout and '--status' in q.stdout, q.stderr

def test_module_dispatch(tmp_path):
    p = subprocess.run([sys.executable, '-m', 'allconv_fastai.cli', 'fly'], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith("error: unknown command 'fly'")
    p = subprocess.run([sys.executable, '-m', 'allconv_fastai.cli', 'eval', 'nowhere'], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 2 and 'No run at nowhere' in p.stderr.strip().splitlines()[-1]
