"""Eager against `torch.compile`d training steps of All-CNN-C, timed side by side (interleaved rounds) in one run.

    python bench/compile.py                  # All-CNN-C, batch 64, fp32 and the library's precision ('auto')
    python bench/compile.py --bs 128 --rounds 10

Prints the compile time (the first compiled step), the median step times and the compiled/eager time ratio for each
precision, and the machine it ran on. A ratio below 1 means the compiled step is faster.
"""
import argparse, statistics, time
import torch
from allconv_fastai import all_cnn_c, cpu_model
from allconv_fastai.speed import best_mode, train_step_fn, sync_device, interleave, paired_ratio

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--rounds', type=int, default=6)
    p.add_argument('--device', default=None)
    a = p.parse_args(argv)
    dev = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    print(f"{cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}, device {dev}"
          + (f" ({torch.cuda.get_device_name(dev)})" if dev.type=='cuda' else ''))
    for mode in dict.fromkeys(['fp32', best_mode(dev)]):
        torch.manual_seed(0)
        eager = train_step_fn(all_cnn_c(bn=True, dropout=False), mode, a.bs, dev)
        torch.manual_seed(0)
        m = all_cnn_c(bn=True, dropout=False)
        comp = train_step_fn(torch.compile(m), mode, a.bs, dev)
        t0 = time.perf_counter(); comp(); sync_device(dev); t_compile = time.perf_counter()-t0
        ts = interleave(dict(eager=eager, compiled=comp), a.rounds, dev)
        print(f"{mode:8} bs {a.bs}: compile {t_compile:.0f} s; step eager {statistics.median(ts['eager'])*1e3:.0f} ms, "
              f"compiled {statistics.median(ts['compiled'])*1e3:.0f} ms; compiled/eager time {paired_ratio(ts, 'compiled', 'eager'):.3f}")

if __name__ == '__main__': main()
