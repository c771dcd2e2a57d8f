"""Where DenseNet-BC-100's CPU training step spends its time, by operator, beside All-CNN-C's step in the same run; and
the GFLOP/s ratio DenseNet-BC-100 could reach if everything but its convolutions (or its convolutions and batch norms)
took no time at all.

    OMP_NUM_THREADS=1 python bench/densenet_profile.py      # what bench/results/densenet-profile-*.txt hold

The step is `allconv_fastai.speed.train_step_fn` at batch 64 in the library's precision on this CPU (`PRECISION=auto`:
bf16 autocast where the CPU computes bf16, else fp32; channels_last either way, as the library trains on a CPU; results
that say 'mode fp32' were measured in NCHW, before fp32 used channels_last), the 'fast' recipe's SGD settings, eager. The
DenseNet step is profiled with `torch.profiler` over `STEPS` steps (default 2) after one warm-up step; both nets' step
times are also the medians of as many unprofiled steps, timed just before and after (the profiler slows a step of many
small operators). 'Convolutions' are the operators `aten::mkldnn_convolution` and `aten::convolution_backward`, 'batch
norm' `aten::native_batch_norm` and its backward (self time). The bounds take the unprofiled ratio and each kind's share
of the profiled operator time (the profiler's overhead taken to spread over the operators alike): the ratio if only
DenseNet's convolutions took time, and if only its convolutions and batch norms did: a DenseNet whose batch norms and
convolutions run as fast as they do here could reach no higher ratio.
"""
import os, statistics, time, torch
from torch.profiler import profile, ProfilerActivity
from allconv_fastai.speed import train_step_fn
from allconv_fastai.campaign import forward_flops
from allconv_fastai.callback.precision import resolve_precision
from allconv_fastai.models.allcnn import all_cnn_c
from allconv_fastai.models.densenet import densenet_bc100_k12
from allconv_fastai.machine import cpu_model, load_average

steps = int(os.environ.get('STEPS', 2))
mode = resolve_precision(os.environ.get('PRECISION', 'auto'), 'cpu') + '+cl'   # channels_last, as the library trains on a CPU
print(cpu_model(), torch.get_num_threads(), 'threads, mode', mode, 'batch 64, load', load_average(), flush=True)
fa = 3*forward_flops(all_cnn_c(bn=True, dropout=False), 32); fd = 3*forward_flops(densenet_bc100_k12(), 32)
kw = dict(lr=.1, label_smoothing=.1, wd=5e-4)
torch.manual_seed(0); a = train_step_fn(all_cnn_c(bn=True, dropout=False), mode, 64, 'cpu', **kw)
torch.manual_seed(0); d = train_step_fn(densenet_bc100_k12(), mode, 64, 'cpu', nesterov=True, **kw)
a(); d()
def timed(f):
    t0 = time.perf_counter(); f(); return time.perf_counter() - t0
ta = [timed(a) for _ in range(steps)]
tu = [timed(d) for _ in range(steps)]
with profile(activities=[ProfilerActivity.CPU]) as p:
    t0 = time.perf_counter()
    for _ in range(steps): d()
    td = (time.perf_counter() - t0)/steps
ta += [timed(a) for _ in range(steps)]
tu += [timed(d) for _ in range(steps)]
ta,tu = statistics.median(ta),statistics.median(tu)
ev = p.key_averages()
self_s = {e.key: e.self_cpu_time_total/1e6/steps for e in ev}
total = sum(self_s.values())
print(f"\nDenseNet-BC-100 step (profiled): {td:.2f} s; operator self time per step {total:.2f} s")
for k,v in sorted(self_s.items(), key=lambda kv: -kv[1])[:10]: print(f"  {k:40s} {v:6.2f} s  {100*v/total:5.1f}%")
conv = sum(v for k,v in self_s.items() if k in ('aten::mkldnn_convolution', 'aten::convolution_backward', 'aten::_convolution_pointwise'))
bn = sum(v for k,v in self_s.items() if k in ('aten::native_batch_norm', 'aten::native_batch_norm_backward'))
print(f"convolutions (forward + backward): {conv:.2f} s a step, {100*conv/total:.1f}% of the operators' time; "
      f"batch norm (forward + backward): {bn:.2f} s, {100*bn/total:.1f}%")
print(f"unprofiled steps: All-CNN-C {ta:.2f} s ({64*fa/ta/1e9:.1f} GFLOP/s); DenseNet-BC-100 {tu:.2f} s ({64*fd/tu/1e9:.1f} GFLOP/s)")
r = (fd/tu)/(fa/ta)
print(f"ratio of GFLOP/s, DenseNet-BC-100 / All-CNN-C: {r:.3f} as measured; {r*total/conv:.3f} if everything but DenseNet's "
      f"convolutions took no time; {r*total/(conv+bn):.3f} if everything but its convolutions and batch norms took no time")
print('load', load_average())
