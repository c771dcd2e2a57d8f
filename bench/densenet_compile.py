"""Experiment: DenseNet-BC-100 eager against `torch.compile`d, beside All-CNN-C, training GFLOP/s in one run (batch 64,
the 'fast' recipe's SGD settings), and the compile time of the first compiled step.

    OMP_NUM_THREADS=1 ROUNDS=3 python bench/densenet_compile.py      # what bench/results/densenet-compile.txt holds

`PRECISION` (environment): 'auto' (the default) is what the library trains in on this CPU (`resolve_precision`): bf16
autocast where the CPU computes bf16 natively, else fp32; or 'bf16' / 'fp32' outright. Either in channels_last, as the
library trains on a CPU. (Results measured before the library's fp32 used channels_last say 'mode fp32': NCHW.)
`ROUNDS` (environment): timed rounds.

Rows: 'a' All-CNN-C eager, 'd' DenseNet-BC-100 eager, 'dc' DenseNet-BC-100 compiled; ratios are DenseNet GFLOP/s over
All-CNN-C's, medians of per-round ratios (`allconv_fastai.speed.interleave`).
"""
import time, statistics, torch, os
from allconv_fastai.speed import train_step_fn, interleave
from allconv_fastai.campaign import forward_flops
from allconv_fastai.callback.precision import resolve_precision
from allconv_fastai.models.allcnn import all_cnn_c
from allconv_fastai.models.densenet import densenet_bc100_k12
from allconv_fastai.machine import cpu_model, load_average
prec = resolve_precision(os.environ.get('PRECISION', 'auto'), 'cpu')
mode = prec + '+cl'   # the library trains channels_last on a CPU, in fp32 too
print(cpu_model(), torch.get_num_threads(), 'threads, mode', mode, 'load', load_average(), flush=True)
torch.manual_seed(0)
fa = 3*forward_flops(all_cnn_c(bn=True, dropout=False), 32); fd = 3*forward_flops(densenet_bc100_k12(), 32)
kw = dict(lr=.1, label_smoothing=.1, wd=5e-4)
torch.manual_seed(0); a = train_step_fn(all_cnn_c(bn=True, dropout=False), mode, 64, 'cpu', **kw)
torch.manual_seed(0); d = train_step_fn(densenet_bc100_k12(), mode, 64, 'cpu', nesterov=True, **kw)
torch.manual_seed(0); dc = train_step_fn(torch.compile(densenet_bc100_k12()), mode, 64, 'cpu', nesterov=True, **kw)
t0=time.time(); dc(); print('compile s', round(time.time()-t0), flush=True)
t0=time.time(); dc(); print('2nd step s', round(time.time()-t0,2), flush=True)
ts = interleave(dict(a=a, d=d, dc=dc), int(os.environ.get('ROUNDS', 3)), 'cpu')
for k,f in (('a',fa),('d',fd),('dc',fd)):
    t = statistics.median(ts[k]); print(k, f'{t*1e3:.0f} ms', f'{64*f/t/1e9:.1f} GFLOP/s')
print('ratio d/a', statistics.median(64*fd/x/(64*fa/y) for x,y in zip(ts['d'], ts['a'])))
print('ratio dc/a', statistics.median(64*fd/x/(64*fa/y) for x,y in zip(ts['dc'], ts['a'])))
print('load', load_average())
