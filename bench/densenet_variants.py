"""DenseNet-BC-100 (k=12) against All-CNN-C on a CPU: training GFLOP/s side by side in one run, for the library's
DenseNet, for variants of it that each undo one of its speed choices, and for a lever tried and not taken (item 7 of the
Table 3 issue: the target is a DenseNet/All-CNN-C GFLOP/s ratio of at least 0.5).

    OMP_NUM_THREADS=1 python bench/densenet_variants.py              # batch 64, 4 timed rounds
    OMP_NUM_THREADS=1 python bench/densenet_variants.py --rounds 6 --bs 64

Every configuration is one training step (`allconv_fastai.speed.train_step_fn`: forward, label-smoothed loss,
backward, SGD step with the 'fast' recipe's settings) on a fixed random 32x32 batch, in the library's mode on this CPU
(`best_mode`: bf16 autocast where the CPU computes bf16, else fp32; channels_last either way). Configurations:

- 'allcnn': All-CNN-C with batch norm, no dropout (the fast recipe's net), the baseline;
- 'densenet': DenseNet-BC-100 as the library builds it;
- 'relu-copy': the same net with its ReLUs writing a new tensor instead of overwriting the batch norm's output;
- 'nchw': the same net in NCHW (the layout the library trained fp32 in before);
- 'list': the same net with each dense layer concatenating the list of all earlier feature maps (as the
  checkpointed block must) instead of the one growing concatenation;
- 'shared-stats' (tried, not taken): in training mode every BN that reads a feature map normalises it with the same
  batch statistics, so each dense block computes them once per map (`_shared_forward`) and each layer applies only its
  own scale and shift (an inference-mode batch norm) before its ReLU: the same loss, gradients and running statistics
  (`check_shared` compares them with the library's block in fp32, and the run stops if they differ), with one fewer
  forward pass per layer over the growing concatenation (its statistics) and a cheaper batch-norm backward.

Timed once per round in alternating order after one warm-up round (`allconv_fastai.speed.interleave`). FLOPs: 3 x the
forward multiply-adds x 2 of the convolutions and the linear layer (`allconv_fastai.campaign.forward_flops`). Ratios
are medians over rounds of per-round ratios.
"""
import argparse, importlib.util, statistics, types, torch
import torch.nn.functional as F
from pathlib import Path
from torch import nn
from allconv_fastai.machine import cpu_model, load_average
from allconv_fastai.speed import train_step_fn, interleave, best_mode
from allconv_fastai.campaign import forward_flops
from allconv_fastai.models.allcnn import all_cnn_c
from allconv_fastai.models.densenet import densenet_bc100_k12, DenseBlock
from allconv_fastai.models.registry import get_recipe

_spec = importlib.util.spec_from_file_location('densenet_speed', Path(__file__).resolve().parent/'densenet_speed.py')
_speed = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(_speed)
_list_forward = _speed._list_forward   # the dense block before the growing concatenation (list of all earlier maps)

def _shared_forward(self, x):
    "A dense block in training mode with each feature map's batch statistics computed once and shared by the BNs that read it."
    if not self.training: return DenseBlock.forward(self, x)
    eps,feats,stats = self.layers[0].first[0].eps,[x],[]
    def norm(f):   # f normalised with its batch statistics; they land in an fp32 (mean, unbiased variance) pair
        c = f.shape[1]; rm,rv = torch.zeros(c, device=f.device),torch.ones(c, device=f.device)
        stats.append((rm, rv)); return F.batch_norm(f, rm, rv, None, None, True, 1., eps)
    xh = norm(x)
    for i,l in enumerate(self.layers):
        bn,c = l.first[0],xh.shape[1]   # this layer's scale and shift: an inference-mode BN with mean 0, variance 1-eps (fp32)
        h = F.batch_norm(xh, torch.zeros(c, device=x.device), torch.full((c,), 1.-eps, device=x.device), bn.weight, bn.bias, False, 0., eps)
        f = l.last(l.first[2:](F.relu_(h)))   # the 1x1 conv (and dropout, if any), then the 3x3 BN-ReLU-conv
        feats.append(f)
        if i < len(self.layers)-1: xh = torch.cat([xh, norm(f)], 1)   # the last layer's maps are read by the transition only
    with torch.no_grad():   # each BN's running statistics, as its own training-mode call would have updated them
        m,v = (torch.cat(o) for o in zip(*stats))
        for l in self.layers:
            bn = l.first[0]; c = bn.num_features
            bn.num_batches_tracked += 1
            mom = bn.momentum if bn.momentum is not None else 1/bn.num_batches_tracked.item()
            bn.running_mean.lerp_(m[:c], mom); bn.running_var.lerp_(v[:c], mom)
    return torch.cat(feats, 1)

def check_shared(bs=8):
    "Largest relative difference of the loss and of the gradients of 'shared-stats' against the library's block (fp32, one backward), and the largest absolute difference of the running statistics."
    a,b = (build(n).to(memory_format=torch.channels_last).train() for n in ('densenet', 'shared-stats'))
    g = torch.Generator().manual_seed(0)
    x,y = torch.randn(bs, 3, 32, 32, generator=g).to(memory_format=torch.channels_last),torch.randint(0, 10, (bs,), generator=g)
    la,lb = (F.cross_entropy(m(x), y) for m in (a, b))
    la.backward(); lb.backward()
    pa,sa = dict(a.named_parameters()),a.state_dict()
    grad = max(((pa[k].grad - p.grad).abs().max()/pa[k].grad.abs().max().clamp_min(1e-12)).item() for k,p in b.named_parameters())
    stats = max((sa[k].float() - v.float()).abs().max().item() for k,v in b.state_dict().items() if 'running' in k or 'num_batches' in k)
    return abs(la.item() - lb.item())/abs(la.item()),grad,stats

def build(name):
    torch.manual_seed(0)
    if name == 'allcnn': return all_cnn_c(bn=True, dropout=False)
    m = densenet_bc100_k12()
    if name == 'relu-copy':
        for x in m.modules():
            if isinstance(x, nn.ReLU): x.inplace = False
    if name in ('list', 'shared-stats'):
        for b in m.modules():
            if isinstance(b, DenseBlock): b.forward = types.MethodType(_list_forward if name=='list' else _shared_forward, b)
    return m

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--rounds', type=int, default=4)
    p.add_argument('--bs', type=int, default=64)
    a = p.parse_args(argv)
    mode = best_mode('cpu')
    print(f"{cpu_model()}; {torch.get_num_threads()} threads; torch {torch.__version__}; mode {mode}, batch {a.bs}; "
          f"load average {load_average()} at start", flush=True)
    names = ('allcnn', 'densenet', 'relu-copy', 'nchw', 'list', 'shared-stats')
    lo,g,st = check_shared()
    print(f"shared-stats against densenet (fp32, one backward on 8 images): loss differs by {lo:.1e} and gradients by at most "
          f"{g:.1e} (relative), running statistics by {st:.1e}", flush=True)
    assert lo < 1e-5 and g < 1e-4 and st < 1e-5, "'shared-stats' does not compute what the library's block computes"
    fl = {n: 3*forward_flops(build('allcnn' if n=='allcnn' else 'densenet'), 32) for n in names}
    fns = {}
    for n in names:
        r = get_recipe('allcnn' if n=='allcnn' else 'densenet', 'fast')
        fns[n] = train_step_fn(build(n), mode.replace('+cl', '') if n=='nchw' else mode, a.bs, 'cpu', lr=r.lr,
                               nesterov=r.nesterov, wd=r.wd, label_smoothing=r.label_smoothing)
    ts = interleave(fns, a.rounds, 'cpu')
    rate = {n: [a.bs*fl[n]/t/1e9 for t in ts[n]] for n in names}
    print(f"{'configuration':12} {'step':>8} {'GFLOP/s':>8}  GFLOP/s ratio to All-CNN-C")
    for n in names:
        r = statistics.median(x/y for x,y in zip(rate[n], rate['allcnn']))
        print(f"{n:12} {statistics.median(ts[n])*1e3:6.0f}ms {statistics.median(rate[n]):8.1f}  {r:.3f}", flush=True)
    for n in names[2:]:
        print(f"step time {n} / densenet: {statistics.median(x/y for x,y in zip(ts[n], ts['densenet'])):.3f}")
    print(f"load average {load_average()} at end")

if __name__ == '__main__': main()
