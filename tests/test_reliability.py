"""Nothing finished is lost and nothing untrusted runs.

Runs killed with SIGKILL anywhere (mid-epoch, mid-save, before the rename, at a random instant) resume to the same
final epoch with a continuous history and the same weights as an uninterrupted run; corrupt, foreign and malicious
files are refused with an `AllconvError` naming them; a NaN loss or NaN weights never overwrite the last good
checkpoint; unwritable or full run directories fail early or at the save with no partial files; two runs with one
seed are identical. Random-bytes fuzzing of every loader is in tests/test_fuzz.py."""
import errno, hashlib, json, os, pickle, signal, subprocess, textwrap, time, warnings, zipfile
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import torch
from fastai.callback.core import Callback
from fastai.torch_core import set_seed
import allconv_fastai.checkpoint as ckpt
from allconv_fastai.core import AllconvError
from allconv_fastai import allcnn_learner, get_arch, save_checkpoint, load_checkpoint, digits_dls
from allconv_fastai.cli import train_main
import forked
from conftest import ENV, TINY, error_lines, image_folder, start

NET = dict(widths=(16, 32), bn=True, dropout=False)   # narrow All-CNN-C that learns the digits quickly
N_EPOCH, LR, MILESTONES = 5, 0.05, (3,)
LRS = [0.05, 0.05, 0.05, 0.005, 0.005]                # what `fit_step(5, 0.05, milestones=(3,))` must use

# The child process: trains the narrow net on the digits into RUN_DIR (resuming from last.pth when there is one)
# and dies by SIGKILL where `kill` says: after its n-th training batch, or inside the atomic write of a file (after
# half its bytes, or after all of them and the fsync but before the rename). The kill hooks wrap the library's
# `atomic_write` from the outside; the library itself is unchanged.
CHILD = r'''
import io, json, os, signal, sys
from contextlib import contextmanager
from pathlib import Path
cfg = json.loads(sys.argv[1])
import torch
torch.set_num_threads(1)
from fastai.torch_core import set_seed
from fastai.callback.core import Callback
import allconv_fastai.checkpoint as C
from allconv_fastai import allcnn_learner, digits_dls

kill = cfg.get('kill') or {}
def die(): os.kill(os.getpid(), signal.SIGKILL)
real_write = C.atomic_write

@contextmanager
def killing_write(path, mode='wb'):
    with real_write(path, mode) as f:
        if kill.get('file') != Path(path).name: yield f; return
        buf = io.BytesIO() if 'b' in mode else io.StringIO()
        yield buf
        data = buf.getvalue()
        f.write(data if kill['when'] == 'before_rename' else data[:len(data)//2])
        f.flush(); os.fsync(f.fileno())
        die()
C.atomic_write = killing_write   # what save_checkpoint and History's file writes call

class KillAtBatch(Callback):
    def __init__(self, n): self.n,self.seen = n,0
    def after_batch(self):
        if not self.training: return
        self.seen += 1
        if self.seen == self.n: die()

set_seed(cfg['seed'], reproducible=True)
dls = digits_dls(size=16, bs=64, device='cpu')
learn = allcnn_learner(dls, 'all-cnn-c', precision='fp32', **cfg['net'])
run = Path(cfg['run_dir'])
start = learn.resume(run) if (run/'last.pth').exists() else 0
print('start', start, flush=True)
cbs = learn.run_cbs(run, resume=start > 0) + ([KillAtBatch(kill['batch'])] if 'batch' in kill else [])
with learn.no_bar(), learn.no_logging():
    if start < cfg['n_epoch']: learn.fit_step(cfg['n_epoch'], cfg['lr'], milestones=cfg['milestones'], cbs=cbs, start_epoch=start)
print('done', flush=True)
'''


def run_child(tmp_path, run_dir, kill=None, seed=0, kill_after=None, timeout=600):   # timeout: the whole child, imports included
    "Run the child trainer; with `kill_after` (seconds), SIGKILL it that long after it starts training."
    script = tmp_path/'child.py'
    if not script.exists(): script.write_text(CHILD)
    cfg = dict(run_dir=str(run_dir), kill=kill, seed=seed, net=NET, n_epoch=N_EPOCH, lr=LR, milestones=MILESTONES)
    p = forked.popen([script, json.dumps(cfg)], env=ENV)
    if kill_after is not None:
        line = p.stdout.readline()                 # 'start <epoch>' once the child is ready to train
        assert line.startswith('start') or p.poll() is not None, line
        time.sleep(kill_after)
        if p.poll() is None: p.send_signal(signal.SIGKILL)
    try: out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill(); out, err = p.communicate()
        pytest.fail(f"child hung for {timeout}s: {err[-2000:]}")
    return p.returncode, out, err


def new_model(): return get_arch('all-cnn-c', n_out=10, **NET)

def check_run_dir(run_dir, also=()):
    "What must hold after any kill: loadable checkpoints, no temp file named like one, a parsable history."
    pths = sorted(p.name for p in run_dir.glob('*.pth'))
    assert set(pths) <= {'last.pth', 'best.pth'}, pths
    for p in run_dir.iterdir():   # anything else is an atomic_write temp file, which is hidden and never a .pth
        assert p.name in ('last.pth', 'best.pth', 'history.csv', *also) or (p.name.startswith('.') and p.name.endswith('.tmp')), p
    ck = None
    for n in pths: st = load_checkpoint(run_dir/n, new_model()); ck = st if n == 'last.pth' else ck
    epochs = pd.read_csv(run_dir/'history.csv').epoch.tolist() if (run_dir/'history.csv').exists() else []
    last = -1 if ck is None else int(ck['meta']['epoch'])
    # history rows are written before the checkpoint that commits their epoch: at most one epoch ahead
    assert epochs == list(range(len(epochs))) and last <= len(epochs)-1 <= last+1, (epochs, last)
    return last, epochs


def state_bytes(path):
    "Model weights of a checkpoint, for exact comparison."
    return {k: v.numpy().tobytes() for k, v in load_checkpoint(path)['model'].items()}


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    "Two uninterrupted runs with seed 0, in two separate processes at once."
    tmp = tmp_path_factory.mktemp('ref')
    script = tmp/'child.py'; script.write_text(CHILD)
    procs = []
    for i in range(2):
        cfg = dict(run_dir=str(tmp/f'run{i}'), kill=None, seed=0, net=NET, n_epoch=N_EPOCH, lr=LR, milestones=MILESTONES)
        procs.append(forked.popen([script, json.dumps(cfg)], env=ENV, fresh=True))   # new interpreters: nothing shared
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    return [tmp/'run0', tmp/'run1']


# ---------------------------------------------------------------------------------------------------------------
# 1. Kill anywhere
# ---------------------------------------------------------------------------------------------------------------

KILLS = [  # (what, kill spec): one process each, all in one run directory, each resuming the previous
    ('mid-epoch, 8 batches into its second epoch', dict(batch=30)),
    ('inside the history.csv write, half the bytes written', dict(file='history.csv', when='half')),
    ('inside the last.pth write, half the bytes written', dict(file='last.pth', when='half')),
    ('after last.pth temp file is complete and fsynced, before the rename', dict(file='last.pth', when='before_rename')),
]

def test_sigkill_anywhere_then_resume_matches_uninterrupted_run(tmp_path, reference):
    t0 = time.time()
    run = tmp_path/'run'
    seen = []
    for what, kill in KILLS:
        rc, out, err = run_child(tmp_path, run, kill=kill)
        assert rc == -signal.SIGKILL, f"{what}: child was not killed (rc {rc})\n{err[-3000:]}"
        seen.append((what, *check_run_dir(run)))
    # and once at a random instant, from outside (seeded, so a failure can be replayed)
    delay = np.random.default_rng(9).uniform(0.3, 2.0)
    rc, out, err = run_child(tmp_path, run, kill_after=delay)
    assert rc in (0, -signal.SIGKILL), err[-3000:]
    seen.append((f'random instant ({delay:.2f} s into training)', *check_run_dir(run)))
    # every kill left a checkpoint that the next process resumed from, so the run advanced
    assert seen[0][1] >= 0 and all(b[1] >= a[1] for a, b in zip(seen, seen[1:])), seen

    rc, out, err = run_child(tmp_path, run)
    assert rc == 0, err[-3000:]
    last, epochs = check_run_dir(run)
    assert last == N_EPOCH-1 and epochs == list(range(N_EPOCH)), (last, epochs)
    h, ref_h = pd.read_csv(run/'history.csv'), pd.read_csv(reference[0]/'history.csv')
    np.testing.assert_allclose(h.lr, LRS, rtol=1e-6)
    # resuming restores weights, optimizer and random state, so the result is the uninterrupted run's, bit for bit.
    # (Not train_loss: fastai's smoothed training loss restarts at every `fit`, so it differs after a resume.)
    assert state_bytes(run/'last.pth') == state_bytes(reference[0]/'last.pth')
    cols = [c for c in h.columns if c not in ('train_loss', 'minutes', 'load')]   # minutes and load: the machine's, never equal
    pd.testing.assert_frame_equal(h[cols], ref_h[cols], check_exact=True)
    # killed writes left temp files; the resumed runs removed them
    assert not list(run.glob('.*.tmp')), list(run.iterdir())
    print('kill points survived:', seen, f'{time.time()-t0:.0f} s')


def test_atomic_write_killed_keeps_old_file(tmp_path):
    "The core guarantee the above rests on, at the lowest level: a write killed half-way leaves the old bytes."
    target = tmp_path/'f.bin'; target.write_bytes(b'old')
    code = textwrap.dedent(f'''
        import os, signal
        from allconv_fastai.core import atomic_write
        with atomic_write({str(target)!r}) as f:
            f.write(b'new' * 1000); f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    ''')
    p = forked.run(['-c', code], env=ENV, timeout=300)
    assert p.returncode == -signal.SIGKILL
    assert target.read_bytes() == b'old'
    assert [q.name for q in tmp_path.iterdir() if q != target][0].endswith('.tmp')


# ---------------------------------------------------------------------------------------------------------------
# 6. Determinism
# ---------------------------------------------------------------------------------------------------------------

def test_same_seed_same_run_in_separate_processes(reference):
    a, b = reference
    ha,hb = (pd.read_csv(p/'history.csv').drop(columns=['minutes', 'load']) for p in (a, b))   # minutes and load: the machine's
    pd.testing.assert_frame_equal(ha, hb, check_exact=True)
    assert state_bytes(a/'last.pth') == state_bytes(b/'last.pth')
    assert state_bytes(a/'best.pth') == state_bytes(b/'best.pth')


def test_shuffling_follows_torch_global_rng():
    "TensorDL shuffles with torch.randperm on the global generator, so `set_seed` fixes the batch order."
    dls = digits_dls(size=8, bs=64, device='cpu')
    def first_labels(seed):
        set_seed(seed, reproducible=True)
        return dls.train.one_batch()[1].clone()
    assert torch.equal(first_labels(1), first_labels(1))
    assert not torch.equal(first_labels(1), first_labels(2))


# ---------------------------------------------------------------------------------------------------------------
# 2. Corrupt or foreign checkpoints (random bytes for every loader: tests/test_fuzz.py)
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def good_ckpt(tmp_path_factory):
    p = tmp_path_factory.mktemp('ck')/'good.pth'
    m = new_model()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m(torch.randn(2, 3, 16, 16)).sum().backward(); opt.step()
    save_checkpoint(p, m, opt, epoch=3)
    return p

def _refused(path, match=None):
    with pytest.raises(AllconvError) as e: load_checkpoint(path, new_model())
    assert str(path) in str(e.value) and 'Fix:' in str(e.value)
    if match: assert match in str(e.value), str(e.value)

@pytest.mark.parametrize('frac', [0, 0.01, 0.3, 0.5, 0.9, 0.999])
def test_truncated_checkpoint_is_refused(tmp_path, good_ckpt, frac):
    b = good_ckpt.read_bytes()
    p = tmp_path/'t.pth'; p.write_bytes(b[:int(len(b)*frac)])
    _refused(p)

def test_foreign_files_are_refused(tmp_path):
    cases = {'tensor.pth': lambda p: torch.save(torch.zeros(3), p),                  # a torch file, not ours
             'sd.pth': lambda p: torch.save(new_model().state_dict(), p),           # a bare state_dict
             'st.pth': lambda p: p.write_bytes(__import__('safetensors.torch').torch.save({'x': torch.zeros(2)})),
             'text.pth': lambda p: p.write_text('epoch,loss\n0,1.0\n'),
             'zip.pth': lambda p: zipfile.ZipFile(p, 'w').writestr('a.txt', 'hello')}
    for name, make in cases.items():
        p = tmp_path/name; make(p)
        _refused(p)
    (tmp_path/'dir.pth').mkdir()
    _refused(tmp_path/'dir.pth')
    other = tmp_path/'other.pth'; save_checkpoint(other, get_arch('all-cnn-c', n_out=10, widths=(8, 16), bn=True))
    _refused(other, 'does not fit this model')

def test_flipped_byte_in_weights_is_detected(tmp_path, good_ckpt):
    "Torch's zip reader does not check CRCs: a flipped bit in the tensor data would load silently without a digest."
    z = zipfile.ZipFile(good_ckpt)
    big = max(z.infolist(), key=lambda i: i.file_size)
    b = bytearray(good_ckpt.read_bytes())
    off = big.header_offset + 30 + len(big.filename) + len(big.extra) + big.file_size//2
    b[off] ^= 0x10
    p = tmp_path/'flipped.pth'; p.write_bytes(bytes(b))
    _refused(p, 'digest')


# ---------------------------------------------------------------------------------------------------------------
# 3. Untrusted checkpoints never run code
# ---------------------------------------------------------------------------------------------------------------

class Payload:
    "Pickles to 'create the marker file' (what an attacker's checkpoint would do)."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))

def _malicious(path, marker, container):
    obj = {'model': {'w': torch.zeros(2)}, 'meta': {'x': Payload(marker)}}
    if container == 'raw pickle':
        with open(path, 'wb') as f: pickle.dump(obj, f)
    elif container == 'torch zip':
        torch.save(obj, path)
    elif container == 'torch legacy':
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    elif container == 'payload in opt state':
        torch.save({'model': {}, 'opt': Payload(marker), 'meta': {}}, path)

CONTAINERS = ['raw pickle', 'torch zip', 'torch legacy', 'payload in opt state']

@pytest.mark.parametrize('container', CONTAINERS)
def test_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path, container):
    marker, p = tmp_path/'marker', tmp_path/'evil.pth'
    _malicious(p, marker, container)
    # the payload is live: unpickling the file the unsafe way does create the marker
    torch.load(p, weights_only=False) if container != 'raw pickle' else pickle.loads(p.read_bytes())
    assert marker.exists(); marker.unlink()
    with pytest.raises(AllconvError, match='not a plain-weights file'): load_checkpoint(p, new_model())
    assert not marker.exists()
    # nor does resuming a run whose last.pth is the malicious file
    run = tmp_path/'run'; run.mkdir(); p.rename(run/'last.pth')
    learn = allcnn_learner(digits_dls(size=16, bs=64, device='cpu'), 'all-cnn-c', precision='fp32', **NET)
    with pytest.raises(AllconvError): learn.resume(run)
    assert not marker.exists()

# ---------------------------------------------------------------------------------------------------------------
# 4. Bad numbers
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def dls16(): return digits_dls(size=16, bs=64, device='cpu')

class InjectNaN(Callback):
    "Make the prediction (so the loss) NaN at (`epoch`, `batch`), or the weights NaN after that batch's step."
    order = 5
    def __init__(self, epoch, batch, where='pred'): self.e, self.b, self.where = epoch, batch, where
    def _here(self): return self.training and self.epoch == self.e and self.iter == self.b
    def after_pred(self):
        if self.where == 'pred' and self._here(): self.learn.pred = self.pred * float('nan')
    def after_step(self):
        if self.where == 'weights' and self._here():
            with torch.no_grad(): next(self.model.parameters()).fill_(float('inf'))

def _two_good_epochs(dls, run):
    set_seed(0, reproducible=True)
    learn = allcnn_learner(dls, 'all-cnn-c', precision='fp32', **NET)
    with learn.no_bar(), learn.no_logging(): learn.fit_step(2, LR, cbs=learn.run_cbs(run))
    return learn, hashlib.sha256((run/'last.pth').read_bytes()).hexdigest()

def _continue(learn, run, cbs, lr=LR):
    start = learn.resume(run)
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        learn.fit_step(4, lr, cbs=learn.run_cbs(run, resume=True) + cbs, start_epoch=start)
    return [str(x.message) for x in w if 'Training stopped' in str(x.message)]

@pytest.mark.parametrize('where', ['pred', 'weights'])
def test_nan_keeps_last_good_checkpoint(tmp_path, dls16, where):
    run = tmp_path/'run'
    learn, good = _two_good_epochs(dls16, run)
    last_batch = len(dls16.train) - 1
    # 'weights': the step of the epoch's last batch makes the weights inf, so the loss itself is still finite there
    batch = 3 if where == 'pred' else last_batch
    msgs = _continue(learn, run, [InjectNaN(2, batch, where)])
    assert hashlib.sha256((run/'last.pth').read_bytes()).hexdigest() == good
    assert load_checkpoint(run/'last.pth', new_model())['meta']['epoch'] == 1
    assert pd.read_csv(run/'history.csv').epoch.tolist() == [0, 1]
    assert learn.diverged is not None and learn.diverged['epoch'] == 2 and learn.diverged['batch'] == batch
    assert len(msgs) == 1 and f'epoch 2, batch {batch}' in msgs[0] and 'learning rate' in msgs[0], msgs

def test_huge_lr_stops_and_keeps_last_good_checkpoint(tmp_path, dls16):
    run = tmp_path/'run'
    learn, good = _two_good_epochs(dls16, run)
    msgs = _continue(learn, run, [], lr=1e6)
    assert hashlib.sha256((run/'last.pth').read_bytes()).hexdigest() == good
    assert learn.diverged is not None and learn.diverged['epoch'] == 2
    assert len(msgs) == 1 and 'epoch 2, batch' in msgs[0] and 'too high' in msgs[0], msgs


# ---------------------------------------------------------------------------------------------------------------
# 5. Bad places
# ---------------------------------------------------------------------------------------------------------------

def _fit_into(dls, run, n=1):
    learn = allcnn_learner(dls, 'all-cnn-c', precision='fp32', **NET)
    with learn.no_bar(), learn.no_logging(): learn.fit_step(n, LR, cbs=learn.run_cbs(run))
    return learn

def test_run_dir_under_a_file_fails_before_training(tmp_path, dls16):
    (tmp_path/'notes.txt').write_text('x')
    class Count(Callback):
        n = 0
        def after_batch(self): Count.n += 1
    learn = allcnn_learner(dls16, 'all-cnn-c', precision='fp32', **NET)
    with pytest.raises(AllconvError, match=r'notes\.txt/run.*Fix:'):
        with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=learn.run_cbs(tmp_path/'notes.txt'/'run') + [Count()])
    assert Count.n == 0

@pytest.fixture
def tiny_tmpfs(tmp_path):
    "A 64 KiB tmpfs (needs root and mount); skipped where that is not possible."
    mnt = tmp_path/'tiny'; mnt.mkdir()
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', str(mnt)], capture_output=True)
    if r.returncode != 0: pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(['umount', str(mnt)], capture_output=True)

@pytest.fixture
def readonly_dir(tmp_path):
    "A read-only tmpfs: permissions alone do not stop root, a read-only mount does."
    mnt = tmp_path/'ro'; mnt.mkdir()
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', str(mnt)], capture_output=True)
    if r.returncode != 0:
        if os.geteuid() == 0: pytest.skip("cannot mount a read-only tmpfs, and root ignores permissions")
        mnt.chmod(0o500)
        yield mnt; mnt.chmod(0o700); return
    yield mnt
    subprocess.run(['umount', str(mnt)], capture_output=True)

def test_unwritable_run_dir_fails_before_training(readonly_dir, dls16):
    with pytest.raises(AllconvError, match=r'Cannot write.*Fix:'): _fit_into(dls16, readonly_dir/'run')
    assert not any(readonly_dir.iterdir())

def test_full_disk_fails_before_training(tiny_tmpfs, dls16):
    "A run directory without room for a checkpoint is refused at the start, not after an epoch of work."
    with pytest.raises(AllconvError, match=r'free.*Fix:'): _fit_into(dls16, tiny_tmpfs/'run')
    assert not [p for p in tiny_tmpfs.rglob('*') if p.is_file()]

def test_disk_fills_during_save_keeps_previous_checkpoint(tmp_path, dls16, monkeypatch):
    "ENOSPC half-way through writing last.pth (a patched writer): clear error, old last.pth intact, no temp files."
    run = tmp_path/'run'
    learn = _fit_into(dls16, run, n=1)
    good = hashlib.sha256((run/'last.pth').read_bytes()).hexdigest()
    real = ckpt.atomic_write
    from contextlib import contextmanager
    @contextmanager
    def full_disk(path, mode='wb'):
        with real(path, mode) as f:
            if Path(path).name != 'last.pth': yield f; return
            class Full:   # the disk fills after 20 kB: the part that fits is written, then ENOSPC
                n = 0
                def write(self, b):
                    room = 20_000 - Full.n
                    if len(b) > room: f.write(b[:room]); raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    Full.n += len(b); return f.write(b)
                def __getattr__(self, k): return getattr(f, k)
            yield Full()
    monkeypatch.setattr(ckpt, 'atomic_write', full_disk)   # what save_checkpoint writes last.pth with
    start = learn.resume(run)
    with pytest.raises(AllconvError, match=r'last\.pth.*No space left.*Fix:'):
        with learn.no_bar(), learn.no_logging(): learn.fit_step(3, LR, cbs=learn.run_cbs(run, resume=True), start_epoch=start)
    assert hashlib.sha256((run/'last.pth').read_bytes()).hexdigest() == good
    assert sorted(p.name for p in run.iterdir()) == ['best.pth', 'history.csv', 'last.pth']


# ---------------------------------------------------------------------------------------------------------------
# 2 (continued). A damaged decode cache is rebuilt from the source, never trusted
# ---------------------------------------------------------------------------------------------------------------

def test_corrupt_cache_is_rebuilt(tmp_path):
    from allconv_fastai import load_images, cache_path
    image_folder(tmp_path/'src', n_per=2, size=8)
    ref = load_images(tmp_path/'src', cache_dir=tmp_path/'cache')
    cp = cache_path(tmp_path/'src', 'fine', tmp_path/'cache')
    good = cp.read_bytes()
    assert load_images(tmp_path/'src', cache_dir=tmp_path/'cache').from_cache
    for bad in (good[:len(good)//2], b'', os.urandom(len(good)), good[:8] + b'{' * 40):
        cp.write_bytes(bad)
        s = load_images(tmp_path/'src', cache_dir=tmp_path/'cache')
        assert not s.from_cache and torch.equal(s.x, ref.x) and torch.equal(s.y, ref.y)
        again = load_images(tmp_path/'src', cache_dir=tmp_path/'cache')   # rewritten: the next call reads it
        assert again.from_cache and torch.equal(again.x, ref.x) and torch.equal(again.y, ref.y)
    assert sorted(p.name for p in (tmp_path/'cache').iterdir()) == [cp.name]


# ---------------------------------------------------------------------------------------------------------------
# 4 (continued). The lr sweep records a divergence and goes on
# ---------------------------------------------------------------------------------------------------------------

def test_lr_sweep_records_divergence_and_goes_on(tmp_path, dls16):
    import allconv_fastai.train as ex
    tiny = dict(widths='16,32', size=16, epochs=1, precision='fp32', bn=False, tta=False)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        df = ex.lr_sweep(tmp_path, lrs=(1e4, 0.05), **tiny)   # the absurd lr first: the sweep must go on
    assert list(df.lr) == [1e4, 0.05]
    assert list(df.diverged.astype(bool)) == [True, False]
    assert 'epoch 0, batch' in df.diverged_why.iloc[0]
    assert df.selected.astype(bool).tolist() == [False, True]
    assert not (tmp_path/'lr10000'/'last.pth').exists()      # nothing was checkpointed from the diverged run
    assert load_checkpoint(tmp_path/'lr0.05'/'last.pth')['meta']['epoch'] == 0


# ---------------------------------------------------------------------------------------------------------------
# The command line: bad run directories give one `error:` line naming the file, and a killed run resumes
# ---------------------------------------------------------------------------------------------------------------

CLI_TINY = [*TINY, '--no-tta']

@pytest.mark.parametrize('bad', ['config.json', 'last.pth'])
def test_cli_resume_refuses_corrupt_run_files(tmp_path, bad, cli):
    from allconv_fastai import RunConfig, save_config
    run = tmp_path/'run'; run.mkdir()
    save_config(run/'config.json', RunConfig(data='digits', size=16, widths='16,32', epochs=2, precision='fp32'))
    (run/bad).write_bytes(os.urandom(300))
    p = cli(train_main, '--resume', run)
    assert p.returncode == 2 and 'Traceback' not in p.stderr, (p.returncode, p.stderr[-2000:])
    err = error_lines(p.stdout + p.stderr)
    assert len(err) == 1 and str(run/bad) in err[0] and 'Fix:' in err[0], p.stdout + p.stderr

@pytest.mark.slow
def test_cli_killed_at_random_then_resumed(tmp_path, cli):
    run = tmp_path/'run'
    p = start('allconv-train', '--out', run, '--epochs', 4, *CLI_TINY)
    t0 = time.time()
    while not (run/'last.pth').exists() and p.poll() is None and time.time() - t0 < 120: time.sleep(0.05)
    time.sleep(np.random.default_rng(3).uniform(0, 1.5))
    p.kill(); out, err = p.communicate()
    assert (run/'last.pth').exists(), err[-3000:]
    cli_files = ('config.json', 'metrics.json', 'curves.png', 'lr.png')
    check_run_dir(run, cli_files)
    r = cli(train_main, '--resume', run)
    assert r.returncode == 0, r.stderr[-3000:]
    last, epochs = check_run_dir(run, cli_files)
    assert last == 3 and epochs == [0, 1, 2, 3]
