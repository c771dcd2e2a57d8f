"""One prepared GPU check, sized for about 7.5 minutes on one GPU (run it through `bench/gpu_check.sh`).

Four stages, each time-boxed, each writing its results the moment it has them (a run cut short keeps what it got):

1. tests: `pytest -m cuda tests/test_cuda.py` (junit XML and log).
2. allcnn: All-CNN-C with the fast recipe on the CIFAR-10 training JPEGs (45,000 train / the seeded 5,000 held out),
   up to 60 epochs of one-cycle on the stage's wall-clock budget (`RunConfig(minutes=...)`), trained by `train_run`
   into the run folder `allcnn-c/`: per-epoch img/s (of the epoch's wall time), minutes and validation accuracy;
   minutes to 90% and to 92.75% (the paper's C10+ figure, 7.25% error) where reached; final accuracy plain and with
   mirror TTA.
3. table3: the C row of the All-CNN paper's Table 3 (model-c, strided-cnn-c, convpool-cnn-c, all-cnn-c) on the same
   data, all with the recipe of stage 2 for the few epochs that fit (run folders under `table3/`).
4. densenet: DenseNet-BC-100 img/s and peak GPU memory per training step, plain vs checkpointed (`efficient=True`).

The fast recipe (stage 2 and 3), every value in one place: batch norm after every conv but the last, no dropout,
random flips + translations of up to 4 px, label smoothing 0.1, SGD momentum 0.9 (fastai's one-cycle: momentum
0.95 -> 0.85 -> 0.95), weight decay 5e-4, bf16 autocast + channels_last where the GPU has bf16 (else fp16). The CPU
recipe is lr 0.15 at batch 128; on a GPU we use batch 512 and lr 0.4: 4x the batch with lr scaled by ~2.7x, between
the square-root (0.3) and linear (0.6) rules, since the linear rule is too aggressive with one-cycle's short warm-up.

Validation numbers only: this data set has no test split, and nothing here is tuned on one.

    python bench/gpu_check.py --out DIR             # on a GPU (the data through ALLCONV_CIFAR10_JPG)
    python bench/gpu_check.py --dry-run --out DIR   # the same steps on the CPU at toy size, in well under a minute
"""
import argparse, json, os, signal, statistics, subprocess, sys, tempfile, time, traceback
import xml.etree.ElementTree as ET
from pathlib import Path
import pandas as pd, torch
from fastai.torch_core import set_seed
from allconv_fastai import (cifar_dls, get_arch, DenseNet, n_params, paper_table3, find_cifar10_jpg, saved_activation_bytes,
                            atomic_write, bench_info, write_json, plot_minutes, RunConfig, train_run)
from allconv_fastai.speed import sync_device, interleave, train_step_fn, mode_autocast

REPO = Path(__file__).resolve().parents[1]
TARGETS = (0.90, 0.9275)  # accuracies whose wall-clock minutes we report; 92.75% = the paper's All-CNN-C on C10+

# Full size (GPU) and toy size (--dry-run on a CPU). Boxes are seconds of wall clock per stage.
FULL = dict(bs=512, lr=0.4, wd=5e-4, smoothing=0.1, widths=(96, 192), epochs=60, table3_epochs=15,
            boxes=dict(tests=120, allcnn=140, table3=90, densenet=50), densenet_bs=(64, 256), densenet_rounds=5)
TOY = dict(bs=32, lr=0.1, wd=5e-4, smoothing=0.1, widths=(16, 32), epochs=2, table3_epochs=1,
           boxes=dict(tests=120, allcnn=60, table3=60, densenet=30), densenet_bs=(8,), densenet_rounds=2)
TABLE3_C = ('model-c', 'strided-cnn-c', 'convpool-cnn-c', 'all-cnn-c')

class Cut(Exception): "The wall-clock limit's SIGTERM arrived."

def _on_term(signum, frame): raise Cut(f"signal {signum}: the time limit cut the run")

def write_csv(path, rows):
    with atomic_write(path, 'w') as f: pd.DataFrame(rows).to_csv(f, index=False)

class Clock:
    "The run's wall-clock budget: how long each stage may take, keeping the later stages' boxes free."
    def __init__(self, seconds:float, boxes:dict):
        self.t0,self.total,self.boxes = time.time(),seconds,boxes
    def left(self) -> float: return self.total - (time.time() - self.t0)
    def box(self, stage:str) -> float:
        later = list(self.boxes)[list(self.boxes).index(stage)+1:]
        return max(0., min(self.boxes[stage], self.left() - sum(0.5*self.boxes[s] for s in later)))

# ---- stage 1: the CUDA tests
def stage_tests(out:Path, box:float, cfg, dev) -> dict:
    cmd = [sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-m', 'cuda', 'tests/test_cuda.py', '-rs', '-q',
           '--durations=15', f'--junitxml={out/"pytest_cuda.xml"}']
    with open(out/'pytest_cuda.log', 'w') as log:
        try: rc = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, timeout=max(box, 1)).returncode
        except subprocess.TimeoutExpired: rc = 'timeout'
    res = dict(returncode=rc, command=' '.join(cmd[1:]))
    xml = out/'pytest_cuda.xml'
    if xml.exists():
        cases = ET.parse(xml).getroot().iter('testcase')
        res['tests'] = {}
        for c in cases:
            kids = {k.tag: (k.get('message') or '')[:300] for k in c}
            state = 'failed' if 'failure' in kids or 'error' in kids else 'skipped' if 'skipped' in kids else 'passed'
            res['tests'][c.get('name')] = dict(state=state, seconds=float(c.get('time', 0)),
                                               **({'message': next(iter(kids.values()))} if kids else {}))
        states = [t['state'] for t in res['tests'].values()]
        res.update({k: states.count(k) for k in ('passed', 'failed', 'skipped')})
    write_json(out/'tests.json', res)
    return res

# ---- data
def toy_folder(root:Path, n_per:int=24, seed:int=0) -> Path:
    "A CIFAR-10-like folder of 32x32 JPEGs, 10 classes, each a colour plus noise (learnable in an epoch or two)."
    from torchvision.io import encode_jpeg
    g = torch.Generator().manual_seed(seed)
    for c in range(10):
        d = root/'train'/f'class{c}'; d.mkdir(parents=True, exist_ok=True)
        colour = torch.rand(3, 1, 1, generator=g)*200
        for i in range(n_per):
            im = (colour + torch.randn(3, 32, 32, generator=g)*40).clamp(0, 255).to(torch.uint8)
            (d/f'{i:04d}.jpg').write_bytes(bytes(encode_jpeg(im, quality=90).numpy()))
    return root

def load_data(dry:bool, cfg, dev, tmp:Path):
    "The 45,000/5,000 seeded split of the CIFAR-10 JPEGs (a toy folder with --dry-run), on `dev`; with the settings that name it."
    t0 = time.time()
    if dry: data = dict(data=str(toy_folder(tmp/'toy-cifar')), valid=40)
    else:
        if find_cifar10_jpg() is None: return None,0.
        data = dict(data='cifar10-jpg', valid=5000)
    dls = cifar_dls(data['data'], bs=cfg['bs'], valid=data['valid'], seed=42, device=dev, cache_dir=tmp)
    dls.settings = data
    return dls,time.time()-t0

def run_config(dls, arch:str, cfg, epochs:int, seconds:float, tta:bool) -> RunConfig:
    "The fast recipe at the GPU check's batch size and lr, trained to a wall-clock budget of `seconds` (at most `epochs`)."
    return RunConfig(arch=arch, recipe='shipped', **dls.settings, seed=42, bs=cfg['bs'], lr=cfg['lr'], wd=cfg['wd'],
                     label_smoothing=cfg['smoothing'], widths=','.join(map(str, cfg['widths'])), epochs=epochs,
                     minutes=max(seconds, 1)/60, precision='auto', tta=tta)

def epochs_table(run:Path, n_train:int) -> pd.DataFrame:
    "Per epoch, from the run's history.csv: minutes since training began, the epoch's seconds and training images/s (of its wall time)."
    h = pd.read_csv(run/'history.csv')
    return pd.DataFrame(dict(epoch=h.epoch, minutes=h.minutes.cumsum(), seconds=h.minutes*60, img_s=n_train/(h.minutes*60),
                             train_loss=h.train_loss, valid_loss=h.valid_loss, accuracy=h.accuracy))

# ---- stage 2: All-CNN-C, the fast recipe
def stage_allcnn(out:Path, box:float, cfg, dev, dls) -> dict:
    run = out/'allcnn-c'
    res = dict(data=dls.data_name, net='all-cnn-c', params=n_params(get_arch('all-cnn-c', widths=cfg['widths'], bn=True)),
               bs=cfg['bs'], lr=cfg['lr'], wd=cfg['wd'], label_smoothing=cfg['smoothing'], widths=list(cfg['widths']),
               max_epochs=cfg['epochs'], box_seconds=round(box), run=str(run))
    write_json(out/'allcnn_c.json', {**res, 'status': 'training'})
    # one-cycle over 60 epochs, or over fewer if 60 would not fit the box (~10 s kept for the evaluation)
    m = train_run(run, run_config(dls, 'all-cnn-c', cfg, cfg['epochs'], box - 10, tta=True), dls=dls)
    e = epochs_table(run, len(dls.train_ds))
    e.to_csv(out/'allcnn_c_epochs.csv', index=False)
    where = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'CPU (dry run)'
    prec = json.loads((run/'config.json').read_text())['env']['precision']
    plot_minutes(run, targets=TARGETS, title=f"All-CNN-C, fast recipe, {prec}, {where}")
    res.update(precision=prec, epochs=len(e), train_minutes=round(float(e.minutes.iloc[-1]), 3), img_s_median=round(float(e.img_s.median())),
               img_s_after_first=round(float(e.img_s.iloc[1:].median())) if len(e) > 1 else None)
    for t in TARGETS:
        hit = e[e.accuracy >= t]
        res[f'minutes_to_{100*t:g}'] = None if hit.empty else round(float(hit.minutes.iloc[0]), 3)
        res[f'epoch_to_{100*t:g}'] = None if hit.empty else int(hit.epoch.iloc[0])
    res.update(valid_accuracy=m['valid_accuracy'], valid_accuracy_mirror_tta=m.get('valid_tta_accuracy'), status='done')
    write_json(out/'allcnn_c.json', res)
    return res

# ---- stage 3: the C row of Table 3
def stage_table3(out:Path, box:float, cfg, dev, dls) -> dict:
    rows,csv = [],out/'table3_c.csv'
    protocol = (f"our fast recipe for each net (BN, no dropout, flip + 4 px translate, label smoothing {cfg['smoothing']}, "
                f"one-cycle lr {cfg['lr']} bs {cfg['bs']}), as many epochs (<= {cfg['table3_epochs']}) as fit in "
                f"{box/len(TABLE3_C):.0f} s; validation error on {dls.data_name}. The paper: 350 epochs, no augmentation, "
                "dropout, test error.")
    t0 = time.time()
    for i,arch in enumerate(TABLE3_C):
        per = (box - (time.time() - t0))/(len(TABLE3_C) - i)   # what is left, shared by the nets still to run
        if per < 3: rows.append(dict(net=arch, status='skipped: out of time')); continue
        run = out/'table3'/arch
        m = train_run(run, run_config(dls, arch, cfg, cfg['table3_epochs'], per - 3, tta=False), dls=dls)
        e = epochs_table(run, len(dls.train_ds))
        acc = m['valid_accuracy']
        rows.append(dict(net=arch, params=n_params(get_arch(arch, widths=cfg['widths'], bn=True)), epochs=m['epochs_trained'],
                         seconds=m['seconds'], img_s=round(float(e.img_s.median())), valid_accuracy=acc,
                         valid_error=round(100*(1-acc), 2), paper_test_error=paper_table3[arch], status='done'))
        write_csv(csv, rows)
        write_json(out/'table3_c.json', dict(protocol=protocol, rows=rows))
    write_csv(csv, rows)
    res = dict(protocol=protocol, rows=rows)
    write_json(out/'table3_c.json', res)
    return res

# ---- stage 4: DenseNet-BC-100, plain vs checkpointed concatenation
def stage_densenet(out:Path, box:float, cfg, dev, dry:bool) -> dict:
    name = 'DenseNet-BC (L=22, k=8)' if dry else 'DenseNet-BC-100 (k=12)'
    build = (lambda eff: DenseNet(22, 8, bc=True, efficient=eff)) if dry else (lambda eff: get_arch('densenet-bc100-k12', efficient=eff))
    modes = ('fp32', 'bf16+cl') if dev.type == 'cpu' or torch.cuda.is_bf16_supported() else ('fp32',)
    rows,t0 = [],time.time()
    for bs in cfg['densenet_bs']:
        for mode in modes:
            if time.time() - t0 > box*0.75: rows.append(dict(net=name, bs=bs, mode=mode, status='skipped: out of time')); continue
            steps,row = {},{}
            for k in ('plain', 'efficient'):
                set_seed(0)
                st = train_step_fn(build(k == 'efficient'), mode, bs, dev)
                with mode_autocast(mode, dev):
                    saved = saved_activation_bytes(st.model, st.xb)
                st(); sync_device(dev)                                    # warm-up: cudnn, gradients, momentum
                peak = base = None
                if dev.type == 'cuda':   # the other net's weights (a few MiB) are on the GPU too: compare the growth as well
                    torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(dev); base = torch.cuda.memory_allocated(dev)
                    st(); sync_device(dev); peak = torch.cuda.max_memory_allocated(dev)
                mib = lambda b: None if b is None else round(b/2**20, 1)
                row[k] = dict(net=name, variant=k, bs=bs, mode=mode, saved_activations_mib=mib(saved), peak_mib=mib(peak),
                              step_growth_mib=mib(None if peak is None else peak - base))
                steps[k] = st
            del st
            n = 3 if dev.type == 'cuda' else 1   # steps per timed turn
            turns = {k: (lambda f=f: [f() for _ in range(n)]) for k,f in steps.items()}
            times = {k: [t/n for t in ts] for k,ts in interleave(turns, cfg['densenet_rounds'], dev, warmup=False).items()}
            for k in steps:
                med = statistics.median(times[k])
                row[k].update(img_s=round(bs/med, 1), seconds_per_step=round(med, 4), status='done',
                              time_vs_plain=round(med/statistics.median(times['plain']), 3))
                for m in ('peak', 'step_growth'):
                    if row[k][f'{m}_mib'] and row['plain'][f'{m}_mib']:
                        row[k][f'{m}_vs_plain'] = round(row[k][f'{m}_mib']/row['plain'][f'{m}_mib'], 3)
                row[k]['saved_vs_plain'] = round(row[k]['saved_activations_mib']/row['plain']['saved_activations_mib'], 3)
                rows.append(row[k])
            del steps
            if dev.type == 'cuda': torch.cuda.empty_cache()
            write_csv(out/'densenet.csv', rows)
    res = dict(net=name, rows=rows)
    write_csv(out/'densenet.csv', rows)
    write_json(out/'densenet.json', res)
    return res

def brief(stage:str, res:dict) -> dict:
    "The few numbers of a stage's result that belong in summary.json (its own files hold the rest)."
    if stage == 'table3': return {r['net']: r.get('valid_error', r['status']) for r in res['rows']}
    if stage == 'densenet':
        return {f"{r['mode']} bs {r['bs']} {r['variant']}": {k: r.get(k) for k in ('img_s', 'peak_mib', 'peak_vs_plain', 'time_vs_plain')}
                for r in res['rows'] if r.get('status') == 'done'}
    return {k: v for k,v in res.items() if k != 'tests'}

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default=os.environ.get('OUT') or 'bench/results/gpu-check', help='folder for the results')
    p.add_argument('--dry-run', action='store_true', help='the same steps on the CPU at toy size')
    p.add_argument('--minutes', type=float, default=7.5, help='wall-clock budget of the whole check')
    p.add_argument('--stages', default='tests,allcnn,table3,densenet', help='comma-separated stages to run')
    a = p.parse_args()
    signal.signal(signal.SIGTERM, _on_term)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    if not a.dry_run and not torch.cuda.is_available():
        raise SystemExit("No CUDA GPU (torch.cuda.is_available() is False): run with --dry-run for the CPU version.")
    dev = torch.device('cpu' if a.dry_run else 'cuda')
    if dev.type == 'cuda': torch.backends.cudnn.benchmark = True   # fixed shapes: let cuDNN pick its fastest kernels
    cfg = TOY if a.dry_run else FULL
    clock = Clock(a.minutes*60, cfg['boxes'])
    write_json(out/'versions.json', {**bench_info(dev), 'dry_run': a.dry_run, 'started': time.strftime('%Y-%m-%d %H:%M:%S %Z')})
    stages = [s for s in a.stages.split(',') if s]
    summary = dict(dry_run=a.dry_run, budget_seconds=a.minutes*60, config={k: v for k,v in cfg.items()}, stages={})
    def record(stage, **kw):
        summary['stages'][stage] = {**summary['stages'].get(stage, {}), **kw}
        summary['seconds'] = round(time.time() - clock.t0, 1)
        write_json(out/'summary.json', summary)
    dls = None
    with tempfile.TemporaryDirectory(prefix='gpu-check-') as tmp:
        for stage in ('tests', 'allcnn', 'table3', 'densenet'):
            if stage not in stages: continue
            box = clock.box(stage)
            t0 = time.time()
            record(stage, status='running', box_seconds=round(box))
            try:
                if box < 1: raise TimeoutError("no time left in the budget")
                if stage == 'tests': res = stage_tests(out, box, cfg, dev)
                elif stage == 'densenet': res = stage_densenet(out, box, cfg, dev, a.dry_run)
                else:
                    if dls is None:
                        dls,secs = load_data(a.dry_run, cfg, dev, Path(tmp))
                        record('data', status='done' if dls is not None else 'skipped', seconds=round(secs, 1),
                               name=None if dls is None else dls.data_name)
                    if dls is None:
                        record(stage, status='skipped: no CIFAR-10 JPEGs (set ALLCONV_CIFAR10_JPG)'); continue
                    box = clock.box(stage)   # loading the data took some of it
                    res = (stage_allcnn if stage == 'allcnn' else stage_table3)(out, box, cfg, dev, dls)
                status = 'failed' if stage == 'tests' and (res.get('failed') or res['returncode'] not in (0, 5)) else 'done'
                record(stage, status=status, seconds=round(time.time()-t0, 1), result=brief(stage, res))
            except Cut as e:
                record(stage, status=f'cut: {e}', seconds=round(time.time()-t0, 1)); break
            except Exception as e:
                record(stage, status=f'error: {type(e).__name__}: {e}', seconds=round(time.time()-t0, 1),
                       traceback=traceback.format_exc()[-3000:])
    print(json.dumps({k: {kk: vv for kk,vv in v.items() if kk != 'traceback'} for k,v in summary['stages'].items()}, indent=1, default=str))
    print(f"Results in {out}")

if __name__ == '__main__': main()
