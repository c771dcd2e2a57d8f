"""The GPU plan (bench/plans/table3-gpu.py) and `bench/gpu_campaign.sh`, which runs a plan for a fixed time on a GPU
machine and packs the runs it filed: here on the CPU (`--dry-run`), with a plan of two tiny runs on the digits."""
import os, subprocess, sys
from pathlib import Path
from allconv_fastai.campaign import load_plan
from allconv_fastai.runs import read_metrics

REPO = Path(__file__).resolve().parents[1]

def test_gpu_plan_is_table3_at_twice_the_budget():
    cpu,gpu = load_plan(REPO/'bench/plans/table3.py'),load_plan(REPO/'bench/plans/table3-gpu.py')
    assert gpu.name == 'table3-gpu' and list(gpu.runs) == list(cpu.runs) and len(gpu) == 106
    sweeps = {n: {'lr': float(n.rsplit('-lr', 1)[1]), 'valid_accuracy': 0.5} for n in cpu.runs if n.startswith('sweep')}
    for n in cpu.runs:
        a,b = cpu.runs[n].resolve(sweeps).to_dict(),gpu.runs[n].resolve(sweeps).to_dict()
        assert gpu.runs[n].keep_weights == cpu.runs[n].keep_weights
        if n.startswith('sweep'): assert a == b, n   # the lr sweeps are the same runs
        else:
            assert (a['epochs'],b['epochs']) == (10, 20), n
            diff = {k for k in a if a[k] != b[k]}
            assert diff <= {'epochs', 'milestones'}, (n, diff)   # only the budget, and the step schedule scaled to it
            if b['milestones']: assert b['milestones'] == [round(e*20/350) for e in (200, 250, 300)] == [11, 14, 17], n   # x0.1 at 200, 250, 300 of 350

def test_dry_run_packs_the_filed_runs(tmp_path):
    (tmp_path/'tiny.py').write_text(
        "from allconv_fastai.campaign import Plan\nplan = Plan('tiny-gpu')\n"
        "T = dict(data='digits', widths='16,32', size=16, precision='fp32', tta=False, seed=0)\n"
        "plan.add('a', epochs=1, lr=0.05, **T)\nplan.add('sweep/b', epochs=1, lr=0.02, keep_weights=False, **T)\n")
    res,out,env = tmp_path/'results',tmp_path/'out',{**os.environ, 'PYTHON': sys.executable, 'OMP_NUM_THREADS': '1'}
    (res/'tiny-gpu'/'old').mkdir(parents=True); (res/'tiny-gpu'/'old'/'metrics.json').write_text('{}')   # filed before: not packed
    cmd = ['bash', str(REPO/'bench/gpu_campaign.sh'), '--dry-run', '--plan', 'tiny.py', '--minutes', '30',   # paths from the caller's folder
           '--results', 'results', '--work', 'work', '--out', 'out']
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert '2 run(s) filed by this call' in p.stdout and (out/'campaign.log').read_text()
    parts = sorted(out.glob('filed.tar.*'))
    assert parts and all(q.stat().st_size <= 15*2**20 for q in parts)
    back = tmp_path/'back'   # unpacked elsewhere: the two runs, whole, and not the one filed before
    u = subprocess.run(['bash', str(REPO/'bench/gpu_campaign.sh'), '--unpack', str(out), '--results', str(back)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert u.returncode == 0, u.stdout + u.stderr
    assert sorted(q.parent.relative_to(back).as_posix() for q in back.rglob('metrics.json')) == ['tiny-gpu/a', 'tiny-gpu/sweep/b']
    assert read_metrics(back/'tiny-gpu'/'a')['epochs_trained'] == 1 and (back/'tiny-gpu'/'a'/'weights.safetensors').exists()
    assert not (back/'tiny-gpu'/'sweep'/'b'/'weights.safetensors').exists()
    # a second call into the same --out folder files nothing new, and leaves no parts of the first call there
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0 and '0 run(s) filed by this call' in p.stdout and not list(out.glob('filed.tar.*')), p.stdout[-2000:]

def test_bad_options_say_how_to_fix(tmp_path):
    for args,what in ((['--minutes', 'ten'], 'not a number of minutes'), (['--minutes', '1.2.3'], 'not a number of minutes'),
                      (['--unpack', str(tmp_path)], 'no filed.tar.* parts'), (['--unpack'], 'needs a value'),
                      (['--frobnicate'], 'unknown option')):
        p = subprocess.run(['bash', str(REPO/'bench/gpu_campaign.sh'), *args], capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and what in p.stderr and 'Fix:' in p.stderr, (args, p.stderr)
