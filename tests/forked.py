"""`python ARGS` for the system tests, without paying for torch's and fastai's imports each time.

A child here is a real process of its own (its own pid, working directory, environment, argv, stdout and stderr,
exit status, signal handlers; SIGKILL kills it), forked from a server that imported the third-party modules once:
multiprocessing's 'forkserver' with `PRELOAD`. Nothing of allconv_fastai is imported before the fork, so every child
imports the package fresh. On a busy 2-core machine those imports take 5-20 s a process; the forked start takes
well under one. `ALLCONV_TEST_SUBPROCESS=1` runs every child as a plain `subprocess.Popen([sys.executable, ...])`
instead (same tests, same assertions), to check that the two agree.

Where a fresh interpreter is itself the point (what `import allconv_fastai` imports, a run that must not share an
interpreter's state with its twin, an exported learner loading where nothing was imported, an installed wheel,
torchrun), tests pass `fresh=True` or call `subprocess` directly. A forked child differs from a new interpreter in
what it inherits from the server: the modules in `PRELOAD` (with their import-time state, numpy's global RNG
included), pytest's `sys.path`, umask and resource limits; its parent is the server and its stdin is /dev/null."""
import atexit, multiprocessing as mp, os, runpy, signal, subprocess, sys, tempfile, time, warnings, weakref
from pathlib import Path

PRELOAD = ['torch', 'fastai.vision.all', 'fastai.distributed', 'fastai.callback.channelslast', 'sklearn.datasets',
           'safetensors.torch', 'pandas', 'PIL.Image']
REAL = os.environ.get('ALLCONV_TEST_SUBPROCESS') == '1'
_ctx = None
_running = weakref.WeakSet()   # children not yet seen to end

def _kill_running():
    "At exit: SIGKILL the children still running (a test that failed before it killed its child), as no one waits for them."
    for c in list(_running):
        if c.poll() is None: c.kill(); c.wait(60)

def _context():
    global _ctx
    if _ctx is None:
        _ctx = mp.get_context('forkserver')
        _ctx.set_forkserver_preload(PRELOAD)
        import multiprocessing.util   # noqa: F401 (its exit handler joins running children: ours are killed before it)
        atexit.register(_kill_running)
    return _ctx


def _scripts(name:str):
    "The function behind the installed console script `name`."
    from importlib.metadata import entry_points
    eps = [e for e in entry_points(group='console_scripts') if e.name == name]
    if eps: return eps[0].load()
    from allconv_fastai import cli   # not installed as a script: what `python -m allconv_fastai.cli NAME` runs
    return lambda: cli.main([name.split('-')[-1], *sys.argv[1:]])

def _child(argv:list, cwd:str, env:dict, out:str, err:str):
    "In the forked process: become `python *argv` in `cwd` with `env`, writing to the files `out` and `err`."
    for fd,path in ((1, out), (2, err)):
        f = os.open(path, os.O_WRONLY | os.O_APPEND); os.dup2(f, fd); os.close(f)
    sys.stdout = open(1, 'w', buffering=1, encoding='utf-8', closefd=False)
    sys.stderr = open(2, 'w', buffering=1, encoding='utf-8', errors='backslashreplace', closefd=False)
    os.chdir(cwd)
    os.environ.clear(); os.environ.update(env)
    import torch
    if env.get('OMP_NUM_THREADS'): torch.set_num_threads(int(env['OMP_NUM_THREADS']))
    for w in filter(None, env.get('PYTHONWARNINGS', '').split(',')): warnings._setoption(w)
    args = list(argv)
    while args and args[0].startswith('-W'):   # -W spec, or -Wspec
        if args[0] == '-W': warnings._setoption(args[1]); args = args[2:]
        else: warnings._setoption(args[0][2:]); args = args[1:]
    try:
        if args[0] == '-c':
            sys.argv = ['-c', *args[2:]]
            exec(compile(args[1], '<string>', 'exec'), {'__name__': '__main__', '__builtins__': __builtins__})
        elif args[0] == '-m':
            sys.argv = [args[1], *args[2:]]
            runpy.run_module(args[1], run_name='__main__', alter_sys=True)
        elif args[0].endswith('.py'):
            sys.argv = list(args)
            runpy.run_path(args[0], run_name='__main__')
        else:   # an installed console script, by name
            sys.argv = list(args)
            sys.exit(_scripts(Path(args[0]).name)())
    finally: atexit._run_exitfuncs()   # what the interpreter does at exit; multiprocessing's children skip it


class _Lines:
    "`Popen.stdout`'s `readline`, on the child's output file: blocks until a whole line is there or the child ended."
    def __init__(self, child, path): self.child,self.path,self.pos = child,path,0
    def _read(self) -> bytes:
        with open(self.path, 'rb') as f: f.seek(self.pos); return f.read()
    def _take(self, b:bytes) -> str: self.pos += len(b); return b.decode('utf-8', errors='replace')
    def readline(self) -> str:
        while True:
            ended = self.child.poll() is not None   # asked before reading: what an ended child wrote is all there
            b = self._read(); i = b.find(b'\n')
            if i >= 0: return self._take(b[:i+1])
            if ended: return self._take(b)
            time.sleep(0.02)
    def rest(self) -> str: return self._take(self._read())


class Child:
    "What `subprocess.Popen(..., stdout=PIPE, stderr=PIPE, text=True)` gives, for a forked child."
    def __init__(self, argv, cwd=None, env=None):
        self.args = list(argv)
        self._dir = tempfile.mkdtemp(prefix='child-')
        out,err = (os.path.join(self._dir, n) for n in ('stdout', 'stderr'))
        for p in (out, err): open(p, 'w').close()
        self._p = _context().Process(target=_child, args=(self.args, str(cwd or os.getcwd()),
                                                          dict(os.environ if env is None else env), out, err))
        self._p.start()
        _running.add(self)
        self.pid = self._p.pid
        self.stdout,self.stderr = _Lines(self, out),_Lines(self, err)

    def poll(self): return self._p.exitcode
    @property
    def returncode(self): return self._p.exitcode

    def wait(self, timeout=None):
        self._p.join(timeout)
        if self._p.exitcode is None: raise subprocess.TimeoutExpired(self.args, timeout)
        return self._p.exitcode

    def send_signal(self, sig):
        if self._p.exitcode is None:
            try: os.kill(self.pid, sig)
            except ProcessLookupError: pass
    def kill(self): self.send_signal(signal.SIGKILL)
    def terminate(self): self.send_signal(signal.SIGTERM)

    def communicate(self, timeout=None):
        self.wait(timeout)
        return self.stdout.rest(),self.stderr.rest()

    def __del__(self):
        try:
            if self._p.exitcode is not None:
                for n in ('stdout', 'stderr'): os.unlink(os.path.join(self._dir, n))
                os.rmdir(self._dir)
        except Exception: pass


def popen(argv:list, cwd=None, env=None, fresh:bool=False):
    "Start `python *argv` (`argv[0]` may also be an installed console script's name); a `Popen`-like handle with text pipes. `fresh`: a new interpreter."
    argv = [str(a) for a in argv]
    if REAL or fresh:
        a0,exe = argv[0],Path(sys.executable).parent/argv[0]
        if a0.startswith('-') or a0.endswith('.py'): cmd = [sys.executable, *argv]
        elif exe.exists(): cmd = [str(exe), *argv[1:]]
        else: cmd = [sys.executable, '-m', 'allconv_fastai.cli', a0.split('-')[-1], *argv[1:]]
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return Child(argv, cwd=cwd, env=env)

def run(argv:list, cwd=None, env=None, timeout=600, fresh:bool=False) -> subprocess.CompletedProcess:
    "Run `python *argv` to its end, like `subprocess.run(..., capture_output=True, text=True, timeout=...)`."
    p = popen(argv, cwd=cwd, env=env, fresh=fresh)
    try: out,err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill(); p.communicate(); raise
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)
