"""Minutes per 45,000-image epoch of All-CNN-C training on this CPU: with the library's precision ('auto'), in fp32,
and in fp32 with the instruction set limited to AVX2 (no AVX-512, no AMX), each measured in a fresh process, side by
side; each in channels_last, as the library trains on a CPU (results from before fp32 used channels_last measured
fp32 in NCHW: their fp32 lines say '(fp32,' where newer ones say '(fp32+cl,').

    python bench/epoch_time.py                  # batch 128, 2 threads, median of 8 timed steps after 1 warm-up step each

The AVX2 figure comes from this CPU with oneDNN and ATen told to use AVX2 kernels only (ONEDNN_MAX_CPU_ISA=AVX2,
ATEN_CPU_CAPABILITY=avx2): it stands in for an AVX2-only CPU, whose clock and caches differ, so read it as an estimate.
On a CPU with nothing beyond AVX2 that line is left out: it would measure the fp32 line again.
"""
import argparse, json, os, subprocess, sys

CHILD = r'''
import json, statistics, sys, torch
from allconv_fastai import all_cnn_c, resolve_precision, cpu_model
from allconv_fastai.speed import train_step_fn, interleave
prec, bs, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
p = resolve_precision(prec, 'cpu')
step = train_step_fn(all_cnn_c(bn=True, dropout=False), p + '+cl', bs, 'cpu', lr=0.05)
s = statistics.median(interleave({'step': step}, steps, 'cpu')['step'])   # after one warm-up step
print(json.dumps(dict(precision=p + '+cl', img_s=bs/s, epoch_min=45000/(bs/s)/60, cpu=cpu_model(), threads=torch.get_num_threads())))
'''

def run(prec, bs, steps, threads, avx2=False):
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads)}
    if avx2: env.update(ONEDNN_MAX_CPU_ISA='AVX2', ATEN_CPU_CAPABILITY='avx2')
    r = subprocess.run([sys.executable, '-c', CHILD, prec, str(bs), str(steps)], env=env, capture_output=True, text=True, timeout=1800)
    if r.returncode: raise SystemExit(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--bs', type=int, default=128)
    p.add_argument('--steps', type=int, default=8)
    p.add_argument('--threads', type=int, default=2)
    a = p.parse_args()
    from allconv_fastai.machine import load_average
    print(f"load average at the start: {' '.join(f'{v:.2f}' for v in load_average() or ()) or 'unknown'}")
    import torch
    beyond_avx2 = torch.backends.cpu.get_cpu_capability() == 'AVX512'   # ATen's kernels here; else the AVX2-only line repeats the fp32 one (or means nothing: not x86)
    for label,prec,avx2 in (('this CPU, auto precision', 'auto', False), ('this CPU, fp32', 'fp32', False),
                            ('AVX2 only, fp32', 'fp32', True))[:3 if beyond_avx2 else 2]:
        r = run(prec, a.bs, a.steps, a.threads, avx2)
        print(f"{label:26} ({r['precision']}, {r['threads']} threads): {r['img_s']:6.1f} img/s, {r['epoch_min']:5.1f} min per "
              f"45,000-image epoch   [{r['cpu']}]")

if __name__ == '__main__': main()
