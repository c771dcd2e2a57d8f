"""DenseNet-BC-100 (k=12) against All-CNN-C: training FLOP rates side by side in one run, old and new dense blocks.

    OMP_NUM_THREADS=1 python bench/densenet_speed.py              # what bench/results/densenet-speed.txt holds
    python bench/densenet_speed.py --rounds 3 --no-proto

Each configuration is one training step (forward, backward, SGD step) on a fixed random 32x32 batch
(`allconv_fastai.speed.train_step_fn`), as `densenet_learner` / `allcnn_learner` run it ('fast' recipe: SGD momentum
0.9, Nesterov for DenseNet, weight decay, label-smoothed cross-entropy): the library's CPU precision (`precision_cbs`:
bf16 autocast + channels_last weights) and fp32 in NCHW (the library's fp32 layout when this was written; it trains fp32
in channels_last now, measured by `bench/densenet_variants.py`). What fastai's Learner adds over such a step is measured by `bench/suite.py` (its
learner section). Configurations are timed once per round, in alternating order (`allconv_fastai.speed.interleave`), after
`--warmup` steps each and one warm-up round. FLOPs are 2 x multiply-adds of the convs and linear layer for one 32x32 forward
(`allconv_fastai.campaign.forward_flops`); a training step counts 3 forward passes.

DenseNet-BC-100 variants: 'old' is the dense block as it was (each layer concatenates the list of all earlier
feature maps), 'new' the library's (one growing concatenation for channels-last input, the list otherwise, so new = old in fp32), 'proto' the hand-written block of
`bench/densenet_fused_block.py` (bf16 only). Ratios are DenseNet GFLOP/s over All-CNN-C GFLOP/s at the same
precision, medians over rounds of per-round ratios.
"""
import argparse, importlib.util, os, statistics, types
from pathlib import Path
import torch
from allconv_fastai.machine import cpu_model, load_average
from allconv_fastai.speed import train_step_fn, interleave
from allconv_fastai.campaign import forward_flops
from allconv_fastai.models.allcnn import all_cnn_c
from allconv_fastai.models.densenet import densenet_bc100_k12, DenseBlock
from allconv_fastai.models.registry import get_recipe

_spec = importlib.util.spec_from_file_location('densenet_fused_block', Path(__file__).resolve().parent/'densenet_fused_block.py')
proto = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(proto)

def _list_forward(self, x):
    "The dense block before this change: every layer concatenates the list of all earlier feature maps."
    feats = [x]
    for l in self.layers: feats.append(l(feats))
    return torch.cat(feats, 1)

def _load() -> str: return ' '.join(f'{x:.2f}' for x in load_average() or ()) or 'unknown'

def build(name):
    "The net for configuration `name`, seeded, in training mode."
    torch.manual_seed(0)
    if name=='allcnn': return all_cnn_c(bn=True, dropout=False)   # the 'fast' All-CNN recipe's net
    m = densenet_bc100_k12()
    fwd = {'old': _list_forward, 'new': None, 'proto': proto.fused_forward}[name]
    if fwd is not None:
        for b in m.modules():
            if isinstance(b, DenseBlock): b.forward = types.MethodType(fwd, b)
    return m

def train_step(m, family, precision, bs):
    "One training step of `m` as the library's learner runs it on a CPU ('fast' recipe), on a fixed random batch."
    r = get_recipe(family, 'fast')
    return train_step_fn(m, 'bf16+cl' if precision=='bf16' else 'fp32', bs, 'cpu', lr=r.lr, nesterov=r.nesterov, wd=r.wd,
                         label_smoothing=r.label_smoothing)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--rounds', type=int, default=4, help='timed rounds')
    p.add_argument('--warmup', type=int, default=1, help='extra untimed steps of each configuration first')
    p.add_argument('--no-proto', action='store_true', help="leave out the 'proto' block")
    a = p.parse_args(argv)
    print(f"{cpu_model()}; {torch.get_num_threads()} threads (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}); "
          f"torch {torch.__version__}; load average {_load()} at start", flush=True)
    flops = {n: 3*forward_flops(build(n), 32) for n in ('allcnn', 'new')}
    print(f"training FLOPs per image (3 x forward): All-CNN-C {flops['allcnn']/1e9:.3f} G, DenseNet-BC-100 {flops['new']/1e9:.3f} G")
    cfgs = {}   # name -> (step, FLOPs per step)
    for prec in ('bf16', 'fp32'):
        for bs in ((64, 128) if prec=='bf16' else (64,)):
            cfgs[f'allcnn {prec} bs{bs}'] = (train_step(build('allcnn'), 'allcnn', prec, bs), bs*flops['allcnn'])
        for v in ('old', 'new') + (('proto',) if prec=='bf16' and not a.no_proto else ()):
            cfgs[f'densenet-{v} {prec} bs64'] = (train_step(build(v), 'densenet', prec, 64), 64*flops['new'])
    for k,(f,_) in cfgs.items():
        for _ in range(a.warmup): f()
    names = list(cfgs)
    times = interleave({k: cfgs[k][0] for k in names}, a.rounds, 'cpu')   # one more warm-up round, then alternating rounds
    rate = {k: [cfgs[k][1]/t/1e9 for t in ts] for k,ts in times.items()}
    print(f"\n{'configuration':28s}{'step (median)':>14s}{'GFLOP/s':>9s}{'img/s':>8s}")
    for k in names:
        bs = int(k.split('bs')[1]); t = statistics.median(times[k])
        print(f"{k:28s}{t*1e3:11.0f} ms{statistics.median(rate[k]):9.1f}{bs/t:8.1f}")
    print("\nGFLOP/s ratio DenseNet-BC-100 / All-CNN-C (median of per-round ratios):")
    for prec in ('bf16', 'fp32'):
        for ac in [k for k in names if k.startswith(f'allcnn {prec}')]:
            cells = [f"{v} {statistics.median(x/y for x,y in zip(rate[k], rate[ac])):.3f}"
                     for v in ('old', 'new', 'proto') for k in [f'densenet-{v} {prec} bs64'] if k in rate]
            print(f"  {prec}, against All-CNN-C {ac.split()[-1]}: " + ', '.join(cells))
    for prec in ('bf16', 'fp32'):
        o,n = f'densenet-old {prec} bs64',f'densenet-new {prec} bs64'
        print(f"DenseNet-BC-100 {prec}: new/old step time {statistics.median(x/y for x,y in zip(times[n], times[o])):.3f}"
              + (f", proto/old {statistics.median(x/y for x,y in zip(times[f'densenet-proto {prec} bs64'], times[o])):.3f}"
                 if f'densenet-proto {prec} bs64' in times else ''))
    print(f"load average at end {_load()}")

if __name__ == '__main__': main()
