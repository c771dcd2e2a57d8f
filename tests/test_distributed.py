"Data-parallel training over gloo on the CPU: 2 processes on one node, and 2 single-process nodes on loopback; different shards, same weights, rank 0 writes."
import json, os, re, socket, subprocess, sys
from pathlib import Path
import pandas as pd
from allconv_fastai.cli import eval_main

def torchrun():
    exe = Path(sys.executable).parent/'torchrun'
    return [str(exe)] if exe.exists() else [sys.executable, '-m', 'torch.distributed.run']

# `python -m allconv_fastai.cli` with `RecordShard` added to every Learner: each rank writes what it trained on
DRIVER = """
import sys
import allconv_fastai.cli
from fastai.learner import defaults
from allconv_fastai.test_utils import RecordShard
out = sys.argv.pop(1)
class _Record(RecordShard):
    def __init__(self): super().__init__(out)
defaults.callbacks = [*defaults.callbacks, _Record]
sys.exit(allconv_fastai.cli.main())
"""

def driver(tmp_path) -> list:
    "The command that runs the CLI with `RecordShard` writing into `tmp_path/'debug'`."
    p = tmp_path.parent/f'{tmp_path.name}-driver.py'
    p.write_text(DRIVER)
    return [str(p), str(tmp_path/'debug')]

def test_two_cpu_processes(tmp_path, cli):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    cmd = [*torchrun(), '--standalone', '--nproc_per_node', '2', *driver(tmp_path), 'train', '--epochs', '2',
           '--widths', '16,32', '--size', '16', '--precision', 'fp32', '--out', 'runs/ddp']
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    r0,r1 = (json.loads((tmp_path/'debug'/f'rank{r}.json').read_text()) for r in (0, 1))
    assert (r0['rank'], r1['rank'], r0['world_size']) == (0, 1, 2)
    assert r0['first_batch']['labels'] != r1['first_batch']['labels']              # each rank its own shard
    assert r0['first_batch']['images_sha1'] != r1['first_batch']['images_sha1']
    # 1,438 training images, batches of 64, last partial batch dropped: one process takes 22 batches an epoch, each
    # of 2 ranks takes 719 images = 11 batches
    assert r0['train_batches'] == r1['train_batches'] == 2 * (1438//2//64)
    assert r0['weights_sha1'] == r1['weights_sha1']                                 # kept in step by DDP
    d = tmp_path/'runs'/'ddp'
    m = json.loads((d/'metrics.json').read_text())
    assert m['processes'] == 2 and 0 < m['valid_accuracy'] <= 1
    assert list(pd.read_csv(d/'history.csv').epoch) == [0, 1]
    assert sorted(o.name for o in d.iterdir()) == ['best.pth', 'config.json', 'curves.png', 'data.json', 'history.csv', 'last.pth',
                                                   'lr.png', 'metrics.json']       # no stray temporary files
    assert p.stdout.count('Run directory:') == 1                                    # only rank 0 prints
    assert sorted(o.name for o in tmp_path.iterdir()) == ['debug', 'runs']          # rank 1 wrote no other run dir
    # the checkpoint holds the plain net's weights: it evaluates in one process
    e = cli(eval_main, 'runs/ddp', cwd=tmp_path)
    assert e.returncode == 0, e.stderr
    # the validation accuracy under two processes counts each of the 359 images once (fastai's DistributedDL pads the
    # last shard to 360): it equals the one-process accuracy of the same weights (last.pth) on the same split
    e = cli(eval_main, 'runs/ddp', '--checkpoint', 'last')
    assert e.returncode == 0, e.stderr
    assert '1,438 train / 359 valid' in e.stdout and '1,438 train / 359 valid' in m['data_name']
    one = float(re.search(r'valid accuracy ([0-9.]+)', e.stdout).group(1))
    assert abs(m['valid_accuracy'] - one) < 6e-5, (m['valid_accuracy'], one)
    assert abs(m['valid_accuracy']*359 - round(m['valid_accuracy']*359)) < 1e-3, m['valid_accuracy']   # k/359, not k/360

def free_port() -> int:
    "A TCP port on the loopback interface that nothing listens on now."
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def test_two_nodes_on_loopback(tmp_path):
    "Two torchrun 'nodes' (one process each) meeting through a c10d rendezvous on 127.0.0.1 train as one run of 2 ranks."
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    port = free_port()
    def node(rank):
        conf = f"is_host={int(rank == 0)},join_timeout=120"   # node 0 hosts the rendezvous store; fail fast if one never joins
        cmd = [*torchrun(), '--nnodes', '2', '--nproc_per_node', '1', '--node_rank', str(rank), '--rdzv_backend', 'c10d',
               '--rdzv_endpoint', f'127.0.0.1:{port}', '--rdzv_id', 'loopback', '--rdzv_conf', conf, '--local_addr', '127.0.0.1',
               *driver(tmp_path), 'train', '--epochs', '1', '--widths', '16,32', '--size', '16', '--precision', 'fp32',
               '--out', 'runs/nodes']
        return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs = [node(0), node(1)]
    outs = []
    try:
        for p in procs: outs.append(p.communicate(timeout=600))
    finally:
        for p in procs:
            if p.poll() is None: p.kill(); p.communicate()
    for p,(out,err) in zip(procs, outs):
        assert p.returncode == 0, out[-3000:] + err[-3000:]
    r0,r1 = (json.loads((tmp_path/'debug'/f'rank{r}.json').read_text()) for r in (0, 1))
    assert (r0['rank'], r1['rank'], r0['world_size'], r1['world_size']) == (0, 1, 2, 2)
    assert r0['first_batch']['labels'] != r1['first_batch']['labels']              # each rank its own shard
    assert r0['train_batches'] == r1['train_batches'] == 1438//2//64                # one epoch of half the data each
    assert r0['weights_sha1'] == r1['weights_sha1']                                 # kept in step by DDP
    d = tmp_path/'runs'/'nodes'
    m = json.loads((d/'metrics.json').read_text())
    assert m['processes'] == 2 and 0 < m['valid_accuracy'] <= 1
    assert list(pd.read_csv(d/'history.csv').epoch) == [0]
    assert sorted(o.name for o in d.iterdir()) == ['best.pth', 'config.json', 'curves.png', 'data.json', 'history.csv', 'last.pth',
                                                   'lr.png', 'metrics.json']       # written once: no stray temporary files
    assert sum(out.count('Run directory:') for out,_ in outs) == 1                 # only rank 0 reports
    assert sorted(o.name for o in tmp_path.iterdir()) == ['debug', 'runs']          # the other rank wrote no other run dir
    assert sorted(o.name for o in (tmp_path/'runs').iterdir()) == ['nodes']

TINY3 = ['--epochs', '3', '--widths', '16,32', '--size', '16', '--precision', 'fp32']   # 11 steps an epoch on each of 2 ranks

def two_ranks(tmp_path, script:str, *args) -> subprocess.CompletedProcess:
    "Run `script` (a driver's source; None: `driver`'s) with `args` as 2 gloo processes under torchrun, in `tmp_path`."
    if script is None: drv = driver(tmp_path)
    else:
        f = tmp_path.parent/f'{tmp_path.name}-script.py'   # one script a test
        f.write_text(script); drv = [str(f)]
    return subprocess.run([*torchrun(), '--standalone', '--nproc_per_node', '2', *drv, *args], cwd=tmp_path,
                          env={**os.environ, 'OMP_NUM_THREADS': '1'}, capture_output=True, text=True, timeout=600)

def resumes_to_the_end(tmp_path, d):
    "`--resume` of the stopped run in `d` (epoch 0 kept) under 2 processes trains its last two epochs."
    p = two_ranks(tmp_path, None, 'train', '--resume', str(d.relative_to(tmp_path)))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert list(pd.read_csv(d/'history.csv').epoch) == [0, 1, 2]
    return json.loads((d/'metrics.json').read_text())

# `python -m allconv_fastai.cli` where rank 1's deadline clock jumps past `until` after its 14th training step (the 3rd
# of epoch 1: each rank takes 11 steps an epoch) and rank 0's never does
SKEWED = """
import os, sys, time
import allconv_fastai.cli, allconv_fastai.runs as runs
class Skewed(runs.Deadline):
    def __init__(self, until, **kw):
        super().__init__(until, **kw)
        self.steps,late = 0,int(os.environ['RANK']) == 1
        self.clock = lambda: self.until + 1 if late and self.steps >= 14 else time.time()
    def after_batch(self):
        if self.training: self.steps += 1
        super().after_batch()
runs.Deadline = Skewed
sys.exit(allconv_fastai.cli.main())
"""

def test_deadline_stops_every_rank_together(tmp_path):
    "A deadline only rank 1 sees passing stops both ranks at the same step (neither is left waiting in an all-reduce); --resume then finishes the run."
    p = two_ranks(tmp_path, SKEWED, 'train', *TINY3, '--out', 'runs/dl', '--until', '+600')
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]   # a stop at the deadline asked for is a success
    assert 'stopped for its deadline' in p.stdout + p.stderr, p.stdout[-3000:] + p.stderr[-3000:]
    d = tmp_path/'runs'/'dl'
    assert list(pd.read_csv(d/'history.csv').epoch) == [0] and not (d/'metrics.json').exists()   # epoch 1 stopped, on both ranks
    assert resumes_to_the_end(tmp_path, d)['processes'] == 2

# `python -m allconv_fastai.cli` where only rank 1 gets SIGTERM, at its 14th training step (the 3rd of epoch 1)
SIGNALLED = """
import os, signal, sys
import allconv_fastai.cli
from fastai.callback.core import Callback
from fastai.learner import defaults
class _Signal(Callback):
    order = -20
    def before_fit(self): self.steps = 0
    def after_batch(self):
        if not self.training: return
        self.steps += 1
        if int(os.environ['RANK']) == 1 and self.steps == 14: os.kill(os.getpid(), signal.SIGTERM)
defaults.callbacks = [*defaults.callbacks, _Signal]
sys.exit(allconv_fastai.cli.main())
"""

def test_signal_to_one_rank_stops_every_rank(tmp_path):
    "SIGTERM to rank 1 alone stops both ranks after the same step, each with the signal's exit status and epoch 0 kept; --resume then finishes the run."
    p = two_ranks(tmp_path, SIGNALLED, 'train', *TINY3, '--out', 'runs/sig')
    out = p.stdout + p.stderr
    assert 'stopped by SIGTERM after its current step' in out, out[-3000:]
    assert 'exitcode  : 143' in out and 'Timeout' not in out and 'Connection' not in out, out[-3000:]   # stopped, not torn down
    d = tmp_path/'runs'/'sig'
    assert list(pd.read_csv(d/'history.csv').epoch) == [0] and not (d/'metrics.json').exists()
    resumes_to_the_end(tmp_path, d)

# `python -m allconv_fastai.cli` where only rank 1's loss reads NaN at its 14th training step (the 3rd of epoch 1); the
# gradients stay finite, so only the check sees it
NAN_LOSS = """
import os, sys
import allconv_fastai.cli
from fastai.callback.core import Callback
from fastai.learner import defaults
class _NaN(Callback):
    order = 60   # before StopOnNaN's check
    def before_fit(self): self.steps = 0
    def after_loss(self):
        if not self.training: return
        self.steps += 1
        if int(os.environ['RANK']) == 1 and self.steps == 14: self.learn.loss = self.learn.loss * float('nan')
defaults.callbacks = [*defaults.callbacks, _NaN]
sys.exit(allconv_fastai.cli.main())
"""

def test_nan_on_one_rank_stops_every_rank(tmp_path):
    "A non-finite loss on rank 1 alone stops both ranks at the same step (neither waits in an all-reduce): the run ends as diverged, with epoch 0 kept."
    p = two_ranks(tmp_path, NAN_LOSS, 'train', *TINY3, '--out', 'runs/nan')
    out = p.stdout + p.stderr
    assert 'Timeout' not in out and 'Connection' not in out and 'ChildFailedError' not in out, out[-3000:]   # not torn down
    d = tmp_path/'runs'/'nan'
    assert list(pd.read_csv(d/'history.csv').epoch) == [0], out[-3000:]
    m = json.loads((d/'metrics.json').read_text())
    assert m['diverged'] and 'epoch 1, batch 2' in m['diverged_why'], m.get('diverged_why')
