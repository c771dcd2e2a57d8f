"""Batch norm + ReLU, the training step's largest cost after the convolutions in DenseNet-BC-100 on a CPU
(`bench/densenet_profile.py`), timed alone on one tensor the size of a dense layer's input: what each part costs
beside a plain copy of the tensor, and whether `torch.compile` (inductor) fusing BN and ReLU forward and backward
beats eager PyTorch. Everything is measured side by side in one run (`allconv_fastai.speed.interleave`), fp32, in
channels_last (as the library trains on a CPU) and in NCHW.

    OMP_NUM_THREADS=1 python bench/bn_relu.py                    # N=64, C=216, 32x32: DenseNet-BC-100's block 1, layer 16
    OMP_NUM_THREADS=1 python bench/bn_relu.py --shape 64 48 32   # the bottleneck's own BN (48 channels)

Rows (milliseconds, medians of `--rounds`): 'copy' clones the tensor (the memory traffic of one read and one write),
'relu' clones and applies ReLU in place, 'bn fwd' batch norm forward in training mode, 'bn fwd+bwd' forward and
backward, 'bn+relu fwd+bwd' the same with the library's in-place ReLU, 'compiled' the same function through
`torch.compile` (its compile time printed first).
"""
import argparse, statistics, time, torch, torch.nn.functional as F
from allconv_fastai.speed import interleave
from allconv_fastai.machine import cpu_model, load_average

def parts(shape, fmt, rounds):
    N,C,H = shape
    torch.manual_seed(0)
    x0,g = (torch.randn(N, C, H, H).contiguous(memory_format=fmt) for _ in range(2))
    x = x0.clone().requires_grad_()
    w,b = torch.ones(C, requires_grad=True),torch.zeros(C, requires_grad=True)
    rm,rv = torch.zeros(C),torch.ones(C)
    def eager(x): return F.batch_norm(x, rm, rv, w, b, training=True).relu_()
    def plain(x): return F.relu(F.batch_norm(x, rm, rv, w, b, training=True))
    comp = torch.compile(plain, dynamic=False)
    def fb(f):
        def run():
            f(x).backward(g); x.grad = w.grad = b.grad = None
        return run
    def bn_fwd():
        with torch.no_grad(): F.batch_norm(x0, rm, rv, w, b, training=True)
    t0 = time.perf_counter(); fb(comp)(); ct = time.perf_counter() - t0
    fns = {'copy': lambda: x0.clone(), 'relu': lambda: x0.clone().relu_(), 'bn fwd': bn_fwd,
           'bn fwd+bwd': fb(lambda x: F.batch_norm(x, rm, rv, w, b, training=True)), 'bn+relu fwd+bwd': fb(eager), 'compiled': fb(comp)}
    return ct,{k: 1e3*statistics.median(v) for k,v in interleave(fns, rounds, 'cpu').items()}

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shape', type=int, nargs=3, default=[64, 216, 32], metavar=('N', 'C', 'H'))
    p.add_argument('--rounds', type=int, default=7)
    a = p.parse_args()
    print(f"{cpu_model()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}, load average at the start "
          f"{' '.join(f'{v:.2f}' for v in load_average() or ()) or 'unknown'}; tensor {tuple(a.shape[:2]) + (a.shape[2],)*2}, fp32", flush=True)
    for name,fmt in (('channels_last', torch.channels_last), ('NCHW', torch.contiguous_format)):
        ct,ms = parts(a.shape, fmt, a.rounds)
        print(f"{name:13} (compile {ct:.1f} s): " + ', '.join(f"{k} {v:.1f}" for k,v in ms.items()) + " ms; "
              f"compiled / eager bn+relu {ms['compiled']/ms['bn+relu fwd+bwd']:.2f}, bn+relu fwd+bwd / copy {ms['bn+relu fwd+bwd']/ms['copy']:.1f}", flush=True)

if __name__ == '__main__': main()
