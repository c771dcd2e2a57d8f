"""Why the C row in the paper's own setting did not train from fastai's init: the first steps of one lr-sweep run of the
Table 3 plan's paper setting (dropout, no batch norm, no augmentation, SGD momentum 0.9, weight decay 1e-3), from
fastai's init (this script's default: how the row first ran) or PyTorch's (`--init torch`: All-CNN's paper recipe's
own, as the plan now runs the row), with the loss, the spread of the class scores and the fraction of active ReLU
units after each step.

    OMP_NUM_THREADS=1 python bench/paper_setting_probe.py --arch model-c --lr 0.01 --precision fp32
    OMP_NUM_THREADS=1 python bench/paper_setting_probe.py --arch model-c --lr 0.1 --precision fp32 --init torch

The data and settings are the plan's own `sweep-paper/<arch>-lr<lr>` run's (bench/plans/table3.py: CIFAR-10 JPEGs,
10,000 of the 45,000 training images, batch 128), with `--init` and `--precision` in place of the plan's. After each
of the first 10 training steps and every 10th up to `--steps`, one fixed validation batch goes through the net in eval
mode (no dropout): the class scores' standard deviation and, per ReLU module in order, the fraction of its outputs
above zero. A ReLU at 0.000 passes no signal and no gradient: what follows it sees the same input for every image (the
later fractions are then those of units whose bias is positive), so the class scores are the same for every image and
the loss settles at ln 10 = 2.303 on the ten balanced classes.
"""
import argparse, dataclasses, torch
from pathlib import Path
from fastai.callback.core import Callback, CancelFitException
from allconv_fastai.campaign import load_plan
from allconv_fastai.build import run_dls, run_learner
from allconv_fastai.machine import cpu_model, load_average

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--arch', default='model-c'); p.add_argument('--lr', type=float, default=0.01)
    p.add_argument('--precision', default='fp32'); p.add_argument('--steps', type=int, default=60)
    p.add_argument('--init', default='fastai', help="the net's initial weights: fastai or torch")
    a = p.parse_args(argv)
    plan = load_plan(Path(__file__).parent/'plans'/'table3.py')
    name = f'sweep-paper/{a.arch}-lr{a.lr:g}'
    if name not in plan.runs:
        p.error(f"the plan has no run {name}; its paper-setting sweeps: {', '.join(n for n in plan.runs if n.startswith('sweep-paper/'))}")
    cfg = dataclasses.replace(plan.runs[name].cfg, precision=a.precision, init=a.init)
    print(f"{cpu_model()}, {torch.get_num_threads()} thread(s), load {load_average()}; {a.arch}, paper setting, {a.init} init, lr {a.lr:g}, {a.precision}", flush=True)
    dls = run_dls(cfg); learn = run_learner(cfg, dls)
    xb,_ = dls.valid.one_batch()
    acts = []
    for m in learn.model.modules():
        if isinstance(m, torch.nn.ReLU): m.register_forward_hook(lambda m,i,o: acts.append((o > 0).float().mean().item()))
    def probe():
        acts.clear(); learn.model.eval()
        with torch.no_grad(): out = learn.model(xb.float())
        learn.model.train(); return out.std().item(),list(acts)
    s,f = probe()
    print(f"before training: class-score std {s:.3f}, active ReLU fractions {' '.join(f'{x:.3f}' for x in f)}", flush=True)
    class Probe(Callback):
        def after_batch(self):
            if not self.training: return
            if self.iter < 10 or self.iter % 10 == 0:
                s,f = probe()
                print(f"step {self.iter:3d}: loss {self.loss.item():7.3f}, class-score std {s:7.3f}, active ReLU fractions "
                      f"{' '.join(f'{x:.3f}' for x in f)}", flush=True)
            if self.iter >= a.steps: raise CancelFitException
    with learn.no_bar(), learn.no_logging(): learn.fit_paper(cfg.epochs, cbs=[Probe()])
    print('load', load_average())

if __name__ == '__main__': main()
