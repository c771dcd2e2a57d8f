"""The benchmark suite: data, learner overhead, precision, memory and scaling, every figure a ratio against a
baseline measured side by side in the same run (these machines are shared and noisy, so no absolute timing is a test).

    python bench/suite.py --quick                 # smaller sizes, fewer repeats
    python bench/suite.py --threads 1             # the full run behind docs/bench.md
    python bench/suite.py --out /tmp/bench.md     # write the report elsewhere (default: this checkout's docs/bench.md)

Precision modes are named as the library resolves `precision='auto'` (`allconv_fastai.resolve_precision`): 'bf16'
where the device computes it natively, 'fp16' on a CUDA GPU without bf16, else 'fp32'; '+cl' adds channels_last.
The suite compares fp32, bf16 and bf16+cl where the device computes bf16 natively; elsewhere (an AVX2-only CPU, where
torch would emulate bf16 and the library trains in fp32; an older GPU) fp32 and the library's own mode (`suite_modes`).
"""
from __future__ import annotations
import argparse, contextlib, io, json, math, os, random, statistics, subprocess, sys, tarfile, tempfile, time
from functools import partial
from pathlib import Path
import numpy as np
import torch
from fastcore.basics import store_attr
from fastai.torch_core import default_device
from fastai.callback.core import Callback, CancelFitException, CancelValidException
from allconv_fastai.core import AllconvError, atomic_write, check_positive
from allconv_fastai.data.sources import find_cifar10_jpg
from allconv_fastai.machine import bench_info, load_average
from allconv_fastai.callback.precision import resolve_precision
from allconv_fastai.data.loaders import cifar_dls
from allconv_fastai.learner import allcnn_learner
from allconv_fastai.speed import (step_modes, sync_device, interleave, paired_ratio, matmul_gflops, train_flops, train_step_fn,
                                  best_mode, plain_loop, mode_autocast)
from allconv_fastai.models.registry import get_arch
from allconv_fastai.models.allcnn import all_cnn_c
from allconv_fastai.models.densenet import densenet_bc100_k12, densenet40_k12, saved_activation_bytes

get_densenet = get_arch  # the registry builds any DenseNet by name


def _build(f, seed:int=0, **kw):
    "The net `f(**kw)` with seeded initial weights."
    torch.manual_seed(seed)
    return f(**kw)

def bench_precision(nets:dict, # name -> builder of the net (called with no arguments)
                    bs:int=64, # batch size
                    rounds:int=3, # interleaved timed rounds
                    device=None,
                    peaks:dict|None=None, # 'fp32'/'bf16' -> matmul GFLOP/s (measured when None)
                    modes=step_modes, # the modes to compare; the first is the baseline
                   ) -> list:
    "Rows (net, mode, img/s, speed-up over the first mode, GFLOP/s, fraction of the matmul peak) for each net and mode."
    peaks = peaks or {'fp32': matmul_gflops(torch.float32, device=device), 'bf16': matmul_gflops(torch.bfloat16, device=device)}
    rows = []
    for name,f in nets.items():
        steps = {m: train_step_fn(_build(f), m, bs, device) for m in modes}
        s0 = steps[modes[0]]
        flops = train_flops(s0.model, s0.xb, s0.yb)
        ts = interleave(steps, rounds, device)
        for m in modes:
            gf = flops/statistics.median(ts[m])/1e9
            rows.append(dict(net=name, mode=m, bs=bs, img_s=bs/statistics.median(ts[m]), speedup=paired_ratio(ts, modes[0], m),
                             gflop_step=flops/1e9, gflop_s=gf, peak_frac=gf/peaks['fp32' if m.startswith('fp32') else 'bf16']))
        del steps
    return rows

def bench_scaling(nets:dict, # name -> builder of the net
                  bss=(32, 64, 128, 256, 512), # batch sizes; the first is the baseline
                  mode:str='fp32', # precision mode (see `step_modes`)
                  rounds:int=2, # interleaved timed rounds
                  device=None,
                  epoch:int=45000, # images in one epoch (45,000: CIFAR-10 less a 5,000 validation split)
                 ) -> list:
    "Rows (net, bs, img/s, throughput relative to the first bs, minutes per epoch) for each net and batch size."
    rows = []
    for name,f in nets.items():
        model = _build(f)
        steps = {bs: train_step_fn(model, mode, bs, device) for bs in bss}
        steps[bss[0]]()  # warm up once; each later step at a new shape costs little next to its own work
        ts = interleave(steps, rounds, device, warmup=False)
        for bs in bss:
            img_s = bs/statistics.median(ts[bs])
            rows.append(dict(net=name, mode=mode, bs=bs, img_s=img_s, rel=1/paired_ratio({'a': [t/bs for t in ts[bs]],
                             'b': [t/bss[0] for t in ts[bss[0]]]}, 'a', 'b'), epoch_min=epoch/img_s/60))
        del steps, model
    return rows

def _status_mb(key:str) -> float:
    "A memory figure of this process from /proc/self/status ('VmRSS': now, 'VmHWM': peak), in MB."
    for l in Path('/proc/self/status').read_text().splitlines():
        if l.startswith(key+':'): return int(l.split()[1])/1024
    raise KeyError(key)

def _rss_probe(arch:str, efficient:bool, bs:int, mode:str):
    "In a child process: print the resident memory (MB) before one training step of `arch` and its peak during it."
    st = train_step_fn(_build(partial(get_densenet, arch, efficient=efficient)), mode, bs, 'cpu')
    before = _status_mb('VmRSS')
    # reset the peak to the current size (Linux >= 4.0); getrusage's maxrss cannot be reset and even counts the
    # parent's size at fork, so it would hide the step
    Path('/proc/self/clear_refs').write_text('5')
    st()
    print(json.dumps(dict(before=before, after=_status_mb('VmHWM'))))

def step_peak_rss(arch:str='densenet-bc100-k12', # a `get_densenet` name
                  efficient:bool=False, # checkpointed concatenation
                  bs:int=64, mode:str='fp32',
                  threads:int|None=None, # torch threads in the child (default: this process's)
                 ) -> float:
    "Growth in MB of the peak resident memory during one training step, in a fresh child process (Linux)."
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
            f"from suite import _rss_probe; _rss_probe({arch!r}, {efficient}, {bs}, {mode!r})")
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads or torch.get_num_threads())}
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=900)
    if r.returncode: raise RuntimeError(f"memory probe failed:\n{r.stderr[-2000:]}")
    d = json.loads(r.stdout.strip().splitlines()[-1])
    return d['after'] - d['before']

def bench_memory(arch:str='densenet-bc100-k12', # a `get_densenet` name
                 bs:int=64, mode:str='fp32',
                 rounds:int=3, # interleaved timed rounds
                 device=None,
                 rss:bool=True, # also measure peak RSS in child processes (CPU)
                ) -> list:
    "Rows (plain, efficient): saved-activation MB, peak-memory growth MB, img/s, time relative to plain."
    dev = torch.device(device or default_device())
    steps = {k: train_step_fn(_build(partial(get_densenet, arch, efficient=k=='efficient')), mode, bs, dev)
             for k in ('plain', 'efficient')}
    rows = {}
    for k,st in steps.items():
        with mode_autocast(mode, dev):
            saved = saved_activation_bytes(st.model, st.xb)/2**20
        if dev.type=='cuda':
            torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(dev); base = torch.cuda.memory_allocated(dev)
            st(); peak = (torch.cuda.max_memory_allocated(dev) - base)/2**20
        elif rss and Path('/proc/self/clear_refs').exists(): peak = step_peak_rss(arch, k=='efficient', bs, mode)
        else: peak = float('nan')
        rows[k] = dict(net=arch, variant=k, mode=mode, bs=bs, saved_mb=saved, peak_mb=peak)
    ts = interleave(steps, rounds, dev)
    for k,r in rows.items(): r.update(img_s=bs/statistics.median(ts[k]), time_rel=paired_ratio(ts, k, 'plain'))
    return list(rows.values())

def cifar_subset(dest, # folder to create `cifar10-jpg/train/<class>/*.jpg` in
                 n:int=10000, # images to take
                 seed:int=0, # seed of the random choice
                 src=None, # archive or folder of CIFAR-10 JPEGs (default: `find_cifar10_jpg()`)
                ) -> tuple:
    "Extract a seeded `n`-image subset of the CIFAR-10 JPEGs into `dest`; (folder, True), or (folder, False) for random JPEGs."
    check_positive(n=n)
    root = Path(dest)/'cifar10-jpg'
    src = Path(src) if src else find_cifar10_jpg()
    def put(parts, data:bytes):
        p = root/'train'/parts[-2]/parts[-1]
        p.parent.mkdir(parents=True, exist_ok=True); p.write_bytes(data)
    if src is not None and src.is_file():
        with tarfile.open(src, 'r:*') as tf:
            ms = sorted((m for m in tf.getmembers() if m.isfile() and m.name.lower().endswith('.jpg')), key=lambda m: m.name)
            keep = {m.name for m in random.Random(seed).sample(ms, min(n, len(ms)))}
            for m in ms:  # in archive order: a gzip stream is read front to back
                if m.name in keep: put(Path(m.name).parts, tf.extractfile(m).read())
        return root,True
    if src is not None and src.is_dir():
        fs = sorted(src.rglob('*.jpg'))
        for f in random.Random(seed).sample(fs, min(n, len(fs))): put(f.parts, f.read_bytes())
        return root,True
    from PIL import Image
    rng = np.random.default_rng(seed)
    for i in range(n):
        b = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(b, 'JPEG', quality=75)
        put((f'class{i%10}', f'{i:05d}.jpg'), b.getvalue())
    return root,False

_cifar_stats = ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])

def _epoch(dl, device):
    "Draw every batch of one epoch of `dl`, on `device`; returns the number of images."
    n = 0
    for xb,yb in dl:
        xb = xb.to(device, non_blocking=True); n += len(xb)
    return n

def data_loaders(folder, # a folder of class folders under `train/`
                 bs:int=256, workers:int=2, device=None, cache_dir=None) -> dict:
    "The three training `DataLoader`s over `folder`: name -> loader ('ours', 'fastai folder', 'torchvision')."
    from fastai.vision.data import ImageDataLoaders
    from fastai.vision.augment import CropPad, RandomCrop, FlipItem
    from fastai.data.transforms import Normalize
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder
    dev = torch.device(device or default_device())
    ours = cifar_dls(str(folder), bs=bs, valid=0.1, seed=0, device=dev, cache_dir=cache_dir)
    fa = ImageDataLoaders.from_folder(folder, valid_pct=0.1, seed=0, bs=bs, num_workers=workers, device=dev,
                                      item_tfms=[CropPad(40), RandomCrop(32), FlipItem(0.5)],
                                      batch_tfms=Normalize.from_stats(*_cifar_stats))
    tv = ImageFolder(str(Path(folder)/'train'), transform=T.Compose([
        T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(*_cifar_stats)]))
    tvdl = torch.utils.data.DataLoader(tv, batch_size=bs, shuffle=True, num_workers=workers, drop_last=True,
                                       pin_memory=dev.type=='cuda')
    return {'ours': ours.train, 'fastai folder': fa.train, 'torchvision': tvdl}

def bench_data(folder, bs:int=256, workers:int=2, rounds:int=2, device=None, cache_dir=None) -> list:
    "Rows (pipeline, img/s, batches/s, our speed-up over it) for the three pipelines, interleaved."
    dev = torch.device(device or default_device())
    dls = data_loaders(folder, bs, workers, dev, cache_dir)
    counts = {}
    def run(k): counts[k] = _epoch(dls[k], dev)
    ts = interleave({k: partial(run, k) for k in dls}, rounds, dev)
    per_img = {k: [t/counts[k] for t in v] for k,v in ts.items()}
    return [dict(pipeline=k, bs=bs, workers=0 if k=='ours' else workers, img_s=1/statistics.median(per_img[k]),
                 batch_s=1/statistics.median(per_img[k])/bs, ours_x=paired_ratio(per_img, k, 'ours')) for k in dls]

def bench_decode(source, # what `cifar_dls` takes: 'cifar10-jpg', or a folder
                 cache_dir, # an empty folder for the cache
                ) -> dict:
    "Seconds of the first (decoding) and second (cached) `cifar_dls(source)` call, and their ratio."
    t0 = time.perf_counter(); a = cifar_dls(source, valid=0.1, cache_dir=cache_dir, device='cpu')
    t1 = time.perf_counter(); b = cifar_dls(source, valid=0.1, cache_dir=cache_dir, device='cpu')
    t2 = time.perf_counter()
    if a.from_cache or not b.from_cache:
        raise AllconvError(f"The decode cache in {cache_dir} was not used as expected.", "pass an empty `cache_dir`.")
    return dict(source=str(source), n=len(a.train_ds)+len(a.valid_ds), first_s=t1-t0, cached_s=t2-t1, ratio=(t1-t0)/(t2-t1))

class InterleaveCB(Callback):
    "Inside a fit: after every `n` training batches, run `other(n)`; time both turns, `rounds` timed rounds after one warm-up."
    order = 200  # after every other callback, so that their per-batch work is inside the Learner's turn
    def __init__(self, other, n:int, rounds:int, device=None): store_attr()
    def before_fit(self): self.times,self.k = {'learner': [], 'plain': []},0
    def before_train(self): sync_device(self.device); self.t0 = time.perf_counter()
    def after_batch(self):
        if not self.training: return
        self.k += 1
        if self.k % self.n: return
        sync_device(self.device); t1 = time.perf_counter()
        self.other(self.n)
        sync_device(self.device); t2 = time.perf_counter()
        if self.k > self.n:  # the first round warms up
            self.times['learner'].append(t1 - self.t0); self.times['plain'].append(t2 - t1)
        if len(self.times['plain']) >= self.rounds: raise CancelFitException
        self.t0 = time.perf_counter()
    def before_validate(self): raise CancelValidException

def suite_modes(device) -> tuple:
    "The precision modes the suite compares on `device`, the first the baseline: fp32, bf16 and bf16+cl where the library's 'auto' picks bf16 (a device that computes it natively: a recent GPU, a CPU with AVX512-BF16 or AMX), else fp32 alone; then the library's own mode (`best_mode`)."
    dev = torch.device(device)
    native = resolve_precision('auto', dev) == 'bf16'
    return tuple(dict.fromkeys((step_modes if native else ('fp32',)) + (best_mode(dev),)))

def bench_learner(dls, # `TensorDataLoaders` to train on
                  arch=all_cnn_c, # builder of the net
                  precisions=('fp32', 'bf16'), n_batch:int=4, # batches per timed turn
                  rounds:int=4, # timed rounds (after one warm-up round)
                  lr:float=0.05, wd:float=1e-3) -> list:
    "Rows (precision, img/s through the Learner and the plain loop, overhead = median paired time ratio - 1)."
    rows = []
    for prec in precisions:
        torch.manual_seed(0)
        learn = allcnn_learner(dls, arch, precision=prec, lr=lr, wd=wd)
        cb = InterleaveCB(plain_loop(dls, arch, prec, lr, wd), n_batch, rounds, dls.device)
        n_epoch = math.ceil((rounds+1)*n_batch / len(dls.train)) + 1
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            learn.fit_one_cycle(n_epoch, lr, cbs=cb)  # progress bars print, to a buffer
        ts,n = cb.times,n_batch*dls.train.bs
        rows.append(dict(precision=prec, bs=dls.train.bs, learner_img_s=n/statistics.median(ts['learner']),
                         plain_img_s=n/statistics.median(ts['plain']), ratio=paired_ratio(ts, 'learner', 'plain')))
    return rows

def md_table(rows:list, # dicts
             cols:list, # (key, header, format) triples; format is a format spec like ',.0f' or a function
            ) -> str:
    "A Markdown table of `rows` with the columns `cols`."
    def cell(r, k, f):
        v = r.get(k, '')
        if v is None or v == '': return ''
        if isinstance(v, float) and not math.isfinite(v): return 'n/a'
        return f(v) if callable(f) else format(v, f)
    lines = ['| ' + ' | '.join(h for _,h,_ in cols) + ' |', '|' + '|'.join('---' for _ in cols) + '|']
    return '\n'.join(lines + ['| ' + ' | '.join(cell(r, k, f) for k,h,f in cols) + ' |' for r in rows])

def _find(rows, **kw):
    return next((r for r in rows or [] if all(r.get(k)==v for k,v in kw.items())), None)

def summary_rows(res:dict) -> list:
    "The headline ratios of a `run_bench` result, each with its target (if any) and whether it is met."
    out = []
    def add(measure, value, target=None, ok=None):
        if value is not None and math.isfinite(value):
            out.append(dict(measure=measure, value=value, target=target or '-', met='-' if ok is None else ('yes' if ok(value) else 'NO')))
    d,p,lr,m = (res.get(k) for k in ('data', 'precision', 'learner', 'memory'))
    fa,tv,ours = _find(d, pipeline='fastai folder'),_find(d, pipeline='torchvision'),_find(d, pipeline='ours')
    if fa: add('data: ours / fastai `from_folder` (img/s)', fa['ours_x'], '>= 20', lambda v: v >= 20)
    if tv: add('data: ours / torchvision `ImageFolder` (img/s)', tv['ours_x'])
    best = _find(p, net='All-CNN-C', mode=res.get('best_mode'))
    if ours and best: add(f"data: ours / All-CNN-C training ({best['mode']}) (img/s)", ours['img_s']/best['img_s'], '>= 10', lambda v: v >= 10)
    if res.get('decode'): add(f"data: first (decoding) / cached `cifar_dls` call, {res['decode']['n']:,} images (time)", res['decode']['ratio'])
    for r in lr or []: add(f"Learner / plain loop, {r['precision']} (time)", r['ratio'], '<= 1.03', lambda v: v <= 1.03)
    for r in p or []:
        if r['mode'] != 'fp32': add(f"{r['net']}: {r['mode']} / fp32 (img/s)", r['speedup'])
    for mode in res.get('modes', step_modes):
        a,b = _find(p, net='All-CNN-C', mode=mode),_find(p, net='All-CNN-C (BN)', mode=mode)
        if a and b: add(f"All-CNN-C: with BN / without, {mode} (time per step)", a['img_s']/b['img_s'])
    pl,ef = _find(m, variant='plain'),_find(m, variant='efficient')
    if pl and ef:
        add("DenseNet-BC-100: efficient / plain saved activations (bytes)", ef['saved_mb']/pl['saved_mb'], '<= 0.60', lambda v: v <= 0.6)
        if pl['peak_mb'] > 0:
            what = 'max allocated' if res.get('info', {}).get('device', '').startswith('cuda') else 'peak RSS growth'
            add(f"DenseNet-BC-100: efficient / plain {what} (bytes)", ef['peak_mb']/pl['peak_mb'], '<= 0.60', lambda v: v <= 0.6)
        add("DenseNet-BC-100: efficient / plain (time per step)", ef['time_rel'], '<= 1.30', lambda v: v <= 1.3)
    return out

_cols = dict(
    data=[('pipeline','pipeline',str), ('bs','bs','d'), ('workers','workers','d'), ('img_s','img/s',',.0f'),
          ('batch_s','batches/s','.1f'), ('ours_x','ours is x faster','.1f')],
    learner=[('precision','precision',str), ('bs','bs','d'), ('learner_img_s','Learner img/s',',.1f'),
             ('plain_img_s','plain loop img/s',',.1f'), ('ratio','Learner / plain (time)','.3f')],
    precision=[('net','net',str), ('mode','mode',str), ('bs','bs','d'), ('img_s','img/s',',.1f'),
               ('speedup','x fp32','.2f'), ('gflop_step','GFLOP/step','.1f'), ('gflop_s','GFLOP/s','.1f'),
               ('peak_frac','of matmul peak','.1%')],
    memory=[('net','net',str), ('variant','concatenation',str), ('mode','mode',str), ('bs','bs','d'),
            ('saved_mb','saved activations MB',',.0f'), ('peak_mb','peak memory growth MB',',.0f'),
            ('img_s','img/s',',.1f'), ('time_rel','time x plain','.2f')],
    scaling=[('net','net',str), ('mode','mode',str), ('bs','bs','d'), ('img_s','img/s',',.1f'),
             ('rel',"throughput x smallest bs",'.2f'), ('epoch_min','min per 45,000-image epoch',',.1f')])

_titles = dict(data='Data pipelines', learner='Learner overhead (interleaved)', precision='Precision and layout',
               memory='Memory: DenseNet-BC-100 concatenation', scaling='Throughput vs batch size')

def report(res:dict) -> str:
    "The Markdown report of a `run_bench` result."
    i = res['info']
    out = ['# Benchmarks', '',
           f"Written by `{res['command']}` in {res['seconds']:.0f} s. Every figure is a ratio against a baseline measured "
           "in the same run (interleaved, median of paired repeats), or a speed measured side by side with its baseline.", '',
           md_table([i], [(k, k, str) for k in i]), '',
           "Seconds per section: " + ', '.join(f"{k} {v:.0f}" for k,v in res.get('times', {}).items()) + '.', '']
    out += [f"- {n}" for n in res.get('notes', [])] + ['', '## Headline ratios', '',
            md_table(summary_rows(res), [('measure','measure',str), ('value','ratio','.2f'), ('target','target',str), ('met','met',str)])]
    if res.get('peaks'):
        bf = res['peaks'].get('bf16', float('nan'))
        out += ['', f"Matmul peak: {res['peaks']['fp32']:,.0f} GFLOP/s fp32" + (f", {bf:,.0f} GFLOP/s bf16" if math.isfinite(bf) else '')
                    + f" ({res['peaks']['n']}x{res['peaks']['n']})."]
    if res.get('decode'):
        dd = res['decode']
        out += ['', f"Decode cost: the first `cifar_dls` call on {dd['n']:,} images took {dd['first_s']:.1f} s "
                f"(decoding + writing the cache), the second {dd['cached_s']:.2f} s (reading the cache)."]
    for k in ('data', 'learner', 'precision', 'memory', 'scaling'):
        if res.get(k): out += ['', f"## {_titles[k]}", '', md_table(res[k], _cols[k])]
    return '\n'.join(out) + '\n'

sections = ('data', 'learner', 'precision', 'memory', 'scaling')

def _settings(quick:bool) -> dict:
    "Sizes of the full run and of `--quick`."
    if quick: return dict(reps=1, n_images=1000, data_bs=64, bs=8, bss=(8, 16), n_batch=2, mm=512, scale_rounds=1, data_rounds=1)
    return dict(reps=3, n_images=10000, data_bs=256, bs=64, bss=(32, 64, 128, 256, 512), n_batch=4, mm=2048, scale_rounds=1,
                data_rounds=2)

def _log(msg): print(msg, file=sys.stderr, flush=True)

def run_bench(quick:bool=False, # smaller sizes and fewer repeats
              device=None, # 'cpu', 'cuda', ... (default: fastai's `default_device()`)
              reps:int|None=None, # timed repeats (rounds) per comparison
              n_images:int|None=None, # images of the data benchmark
              bs:int|None=None, # training batch size of the learner, precision and memory sections
              only=sections, # the sections to run
              workers:int=2, # workers of the fastai and torchvision loaders
              threads:int|None=None, # torch CPU threads (default: torch's choice, one per core)
              command:str='python bench/suite.py', # recorded in the report
             ) -> dict:
    "Run the benchmark sections `only` and return their tables, the machine and notes (see `report`)."
    t_start,old_threads = time.perf_counter(),torch.get_num_threads()
    if threads: check_positive(threads=threads); torch.set_num_threads(threads)
    try: return _run_bench(quick, device, reps, n_images, bs, only, workers, command, t_start)
    finally: torch.set_num_threads(old_threads)

def _run_bench(quick, device, reps, n_images, bs, only, workers, command, t_start):
    s = _settings(quick)
    reps,n_images,bs = reps or s['reps'],n_images or s['n_images'],bs or s['bs']
    check_positive(reps=reps, n_images=n_images, bs=bs)
    bad = set(only) - set(sections)
    if bad: raise AllconvError(f"Unknown sections {sorted(bad)}.", f"choose from {', '.join(sections)}.")
    dev = torch.device(device or default_device())
    if dev.type=='cuda' and not torch.cuda.is_available():
        raise AllconvError("`--device cuda` but torch sees no GPU.", "run on a machine with a GPU, or use --device cpu.")
    res = dict(info=bench_info(dev), best_mode=best_mode(dev), modes=suite_modes(dev), notes=[], quick=quick)
    if 'bf16' not in res['modes']:
        res['notes'].append(f"bf16 left out: this device does not compute bf16 natively (a CPU without AVX512-BF16 or AMX, or an older GPU), "
                            f"and the library's `precision='auto'` trains in {resolve_precision('auto', dev)} here; the modes compared are fp32 and the library's.")
    load,cores = (load_average() or (0,))[0],res['info']['cores']
    res['notes'].append(f"Load average (1, 5, 15 min) at the start: {res['info']['load_avg']} on {cores} cores" + (
        ": other jobs were running, so absolute speeds are noisy and the ratios are what to read. On an oversubscribed "
        "CPU, torch's intra-op threads wait for each other: `--threads 1` is then much faster." if load > 0.5*cores else '.'))
    times = res['times'] = {}
    @contextlib.contextmanager
    def section(name):
        _log(f"{name} ..."); t0 = time.perf_counter()
        yield
        times[name] = time.perf_counter() - t0; _log(f"{name}: {times[name]:.0f} s")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if 'data' in only or 'learner' in only:
            with section('images'): folder,real = cifar_subset(tmp/'img', n_images)
            res['notes'].append(f"Data: a seeded {n_images:,}-image subset of the shared CIFAR-10 JPEGs." if real else
                f"Data: no CIFAR-10 JPEGs on this machine (`find_cifar10_jpg()` is None): {n_images:,} random 32x32 JPEGs "
                "in the same layout stand in.")
        if 'data' in only:
            full = not quick and find_cifar10_jpg() is not None
            with section('decode'): res['decode'] = bench_decode('cifar10-jpg' if full else str(folder), tmp/'cache-decode')
            with section('data'): res['data'] = bench_data(folder, s['data_bs'], workers, min(reps, s['data_rounds']), dev, tmp/'cache')
        if 'learner' in only:
            with section('learner'):
                ldls = cifar_dls(str(folder), bs=bs, valid=0.1, seed=0, device=dev, cache_dir=tmp/'cache')
                res['learner'] = bench_learner(ldls, all_cnn_c, tuple(dict.fromkeys(m.split('+')[0] for m in res['modes'] if m.split('+')[0] in ('fp32', 'bf16'))), s['n_batch'], reps+1)
        if 'precision' in only:
            with section('precision'):
                res['peaks'] = dict(fp32=matmul_gflops(torch.float32, s['mm'], reps+2, dev), n=s['mm'],
                                    bf16=matmul_gflops(torch.bfloat16, s['mm'], reps+2, dev) if 'bf16' in res['modes'] else float('nan'))
                nets = {'All-CNN-C': all_cnn_c, 'All-CNN-C (BN)': partial(all_cnn_c, bn=True), 'DenseNet-BC-100': densenet_bc100_k12}
                res['precision'] = bench_precision(nets, bs, reps, dev, res['peaks'], res['modes'])
        if 'memory' in only:
            with section('memory'): res['memory'] = bench_memory('densenet-bc100-k12', bs, res['best_mode'], reps, dev)
        if 'scaling' in only:
            with section('scaling'):
                nets = {'All-CNN-C': all_cnn_c, 'DenseNet-BC-100': densenet_bc100_k12, 'DenseNet-40': densenet40_k12}
                res['scaling'] = bench_scaling(nets, s['bss'], res['best_mode'], s['scale_rounds'], dev)
    res['command'],res['seconds'] = command,time.perf_counter()-t_start
    return res

def main(argv=None):
    "Command line: run the benchmark, print the Markdown report and write it to `--out`."
    ap = argparse.ArgumentParser(prog='python bench/suite.py', description=__doc__.split(chr(10))[0])
    ap.add_argument('--quick', action='store_true', help='smaller sizes and fewer repeats')
    ap.add_argument('--device', default=None, help="'cpu' or 'cuda' (default: fastai's default_device())")
    ap.add_argument('--reps', type=int, default=None, help='timed repeats per comparison (default 3, quick 1)')
    ap.add_argument('--n-images', type=int, default=None, help='images of the data benchmark (default 10000, quick 1000)')
    ap.add_argument('--bs', type=int, default=None, help='training batch size (default 64, quick 8)')
    ap.add_argument('--only', default=','.join(sections), help=f"comma-separated sections ({','.join(sections)})")
    ap.add_argument('--workers', type=int, default=2, help='workers of the fastai and torchvision loaders')
    ap.add_argument('--threads', type=int, default=None, help="torch CPU threads (default: torch's, one per core)")
    ap.add_argument('--out', default=str(Path(__file__).resolve().parent.parent/'docs'/'bench.md'), help="Markdown file to write (default: this checkout's docs/bench.md, wherever it runs from)")
    a = ap.parse_args(argv)
    cmd = 'python bench/suite.py ' + ' '.join(argv if argv is not None else sys.argv[1:])
    try: res = run_bench(a.quick, a.device, a.reps, a.n_images, a.bs, [o.strip() for o in a.only.split(',') if o.strip()],
                         a.workers, a.threads, cmd.strip())
    except AllconvError as e: sys.exit(f"bench/suite.py: {e}")
    md = report(res)
    with atomic_write(a.out, 'w') as f: f.write(md)
    print(md)
    _log(f"wrote {a.out}")

if __name__ == '__main__': main()
