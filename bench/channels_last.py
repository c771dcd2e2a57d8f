"""fp32 training steps in NCHW against channels_last, for the twelve Table 3 nets and DenseNet-BC-100, timed side by
side (interleaved rounds) in one run: the measurement behind the library's CPU layout in fp32.

    python bench/channels_last.py                  # batch 128 (DenseNet-BC-100: 64), 3 timed rounds, torch's threads
    OMP_NUM_THREADS=1 python bench/channels_last.py --rounds 5

Each net trains as the fast recipe trains it (batch norm, no dropout; SGD lr 0.1, momentum 0.9, weight decay 5e-4,
label smoothing 0.1) on one fixed random batch; channels_last puts the weights in that layout, as fastai's
`ChannelsLast` callback does (the input batch stays NCHW; the first convolution's output follows the weights). Prints, per net, the median step time in each layout and the median over rounds of the
channels_last / NCHW time ratio (below 1: channels_last is faster), then the geometric mean of the ratios.
"""
import argparse, math, statistics, torch
from allconv_fastai.machine import cpu_model, load_average
from allconv_fastai.models.registry import get_arch, arch_names
from allconv_fastai.speed import train_step_fn, interleave, paired_ratio

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--bs', type=int, default=128, help="batch size of the All-CNN paper's nets")
    p.add_argument('--densenet-bs', type=int, default=64, help="batch size of DenseNet-BC-100")
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--nets', nargs='*', default=arch_names('allcnn') + ['densenet-bc-100-k12'])
    a = p.parse_args(argv)
    print(f"{cpu_model()}; {torch.get_num_threads()} threads; torch {torch.__version__}; load average {load_average()} at start", flush=True)
    print(f"{'net':22} {'NCHW':>9} {'chan-last':>9}  ratio (channels_last / NCHW time)")
    ratios = []
    for net in a.nets:
        kw = dict(bn=True, dropout=False) if net in arch_names('allcnn') else {}
        bs = a.densenet_bs if net.startswith('densenet') else a.bs
        fns = {}
        for mode in ('fp32', 'fp32+cl'):
            torch.manual_seed(0)
            fns[mode] = train_step_fn(get_arch(net, **kw), mode, bs, 'cpu', lr=0.1, wd=5e-4, label_smoothing=0.1)
        ts = interleave(fns, a.rounds, 'cpu')
        r = paired_ratio(ts, 'fp32+cl', 'fp32'); ratios.append(r)
        print(f"{net:22} {statistics.median(ts['fp32'])*1e3:7.0f}ms {statistics.median(ts['fp32+cl'])*1e3:7.0f}ms  {r:.3f}  (batch {bs})", flush=True)
    print(f"geometric mean of the ratios: {math.exp(statistics.mean(map(math.log, ratios))):.3f}; load average {load_average()} at end")

if __name__ == '__main__': main()
