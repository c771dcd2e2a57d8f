"""What the system tests share: the console commands, called in this process (`cli`) or as a process of their own
(`command`, `start`: forked with torch and fastai already imported, tests/forked.py) where the process itself is what a
test is about; reading their one-line errors; waiting on a process with a generous limit; and the one writer of image
folders, on top of `allconv_fastai.test_utils.png_tree`."""
import os, re, subprocess, sys, time
from pathlib import Path
import pytest
import forked

BIN = Path(sys.executable).parent   # where the console scripts are installed
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}
TINY = ['--data', 'digits', '--size', '16', '--widths', '16,32', '--precision', 'fp32']   # a narrow net on small digits


# ---------------------------------------------------------------- console commands

def start(name:str, *args, cwd=None):
    "Start the console command `name` in a process of its own (forked with torch and fastai imported: tests/forked.py); a `Popen`-like handle with text pipes."
    return forked.popen([name, *args], cwd=cwd, env=ENV)

def command(name:str, *args, cwd=None, timeout=600, fresh:bool=False) -> subprocess.CompletedProcess:
    "Run the console command `name` to its end in a process of its own; `fresh`: the installed script in a new interpreter."
    return forked.run([name, *args], cwd=cwd, env=ENV, timeout=timeout, fresh=fresh)

@pytest.fixture
def cli(capsys, monkeypatch):
    "Call a command's entry point in this process: `cli(train_main, *args, cwd=...)` gives what `command` gives."
    def call(main, *args, cwd=None):
        if cwd is not None: monkeypatch.chdir(cwd)
        capsys.readouterr()
        argv = [str(a) for a in args]
        try: rc = main(argv)
        except SystemExit as e: rc = e.code   # argparse: --help, or an option it cannot parse
        out = capsys.readouterr()
        return subprocess.CompletedProcess(argv, rc, out.out, out.err)
    return call

def one_line(err:str) -> list:
    "The non-blank lines of `err`: a refusal must be exactly one."
    return [l for l in err.splitlines() if l.strip()]

def error_lines(text:str) -> list: return [l for l in text.splitlines() if l.startswith('error:')]

def printed(out:str, what:str='valid accuracy') -> float:
    "The number a command printed after `what`."
    return float(re.search(rf"{what} (?:\([^)]*\) )?([0-9.]+)", out).group(1))

def wait_for(cond, p:subprocess.Popen, what:str, limit:float=300):
    "Wait until `cond()` while `p` runs; the limit times this wait alone and is generous for a busy 2-core machine."
    t0 = time.monotonic()
    while not cond():
        assert p.poll() is None, f"{what}: the process ended first: {p.communicate()[1][-2000:]}"
        assert time.monotonic() - t0 < limit, f"{what}: not within {limit} s"
        time.sleep(0.05)


# ---------------------------------------------------------------- test data

def image_folder(root, classes=('cat', 'dog'), n_per:int=3, splits=('train',), size:int=32, seed:int=0, ext:str='png',
                 labels:bool=False) -> dict:
    "Random RGB images in root/<split>/<class>/NNNN.<ext> (a class may be 'coarse/fine'); {relative path: uint8 (3,H,W)}. labels.txt only when `labels`."
    from allconv_fastai.test_utils import png_tree
    root = Path(root)
    lt = root/'labels.txt'
    old = lt.read_bytes() if lt.exists() else None
    ims = png_tree(root, n_per=n_per, classes=tuple(classes), splits=tuple(splits), size=size, seed=seed,
                   ext=ext if ext in ('png', 'jpg') else 'png')
    if not labels:   # png_tree writes labels.txt; put back what was there
        if old is None: lt.unlink()
        else: lt.write_bytes(old)
    if ext in ('png', 'jpg'): return ims
    out = {}   # another format (BMP: rewritten pixels keep the file's size): PIL writes it from the same pixels
    for k,im in ims.items():
        p = root/k
        save_image(p.with_suffix('.' + ext), im); p.unlink()
        out[str(Path(k).with_suffix('.' + ext))] = im
    return out

def save_image(path, x):
    "Save the uint8 (3,H,W) tensor `x` as an image file, its format from the suffix."
    from PIL import Image
    Image.fromarray(x.permute(1, 2, 0).cpu().numpy()).save(path)

C10 = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']

def cifar_pickle(d:dict) -> bytes: return __import__('pickle').dumps({k.encode(): v for k,v in d.items()}, protocol=2)

def cifar10_python_files(n:int=4, seed:int=0) -> dict:
    "The seven files of cifar-10-python.tar.gz as bytes (bytes keys, uint8 (N,3072) rows), `n` random images a batch."
    import numpy as np
    rng,files = np.random.default_rng(seed),{}
    for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        files[name] = cifar_pickle({'batch_label': name.encode(), 'labels': [int(v) for v in rng.integers(0, 10, n)],
                               'data': rng.integers(0, 256, (n, 3072), dtype=np.uint8), 'filenames': [b'f%d.png' % i for i in range(n)]})
    files["batches.meta"] = cifar_pickle({'label_names': [c.encode() for c in C10], 'num_cases_per_batch': n, 'num_vis': 3072})
    return files

def tar_gz(files:dict, folder:str='cifar-10-batches-py') -> bytes:
    "A .tar.gz holding {name: bytes} in `folder`."
    import io, tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:gz') as tf:
        for name,b in files.items():
            ti = tarfile.TarInfo(f'{folder}/{name}'); ti.size = len(b); tf.addfile(ti, io.BytesIO(b))
    return buf.getvalue()
