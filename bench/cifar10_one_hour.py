"""All-CNN-C on the real CIFAR-10 training images (JPEG q75), trained on this machine's CPU for about an hour.

The fast recipe: batch norm, no dropout, flip + 4-pixel translation, one-cycle, label smoothing, bf16 autocast and
channels_last where the CPU supports bf16, mirror TTA. 5,000 training images are held out (seeded) for validation;
there is no test split in this data set, so every number here is a validation number.

The one-cycle schedule runs on a wall-clock budget rather than a number of epochs (`learn.fit_one_cycle_budget`): it
is stretched over as many whole epochs as fit in `--minutes`, re-planned from the measured time per epoch, so the run
fits the hour on a busy machine too, with fewer epochs.

    python bench/cifar10_one_hour.py --minutes 57 --out runs/cifar10-one-hour

Writes the usual run directory (config.json, history.csv, last.pth/best.pth, curves.png, lr.png) plus
`minutes.csv` and `accuracy_vs_minutes.png`: validation accuracy against wall-clock minutes since training began.
"""
import argparse, json, os, time
from pathlib import Path
import pandas as pd, torch
from fastai.callback.core import Callback
from fastai.losses import LabelSmoothingCrossEntropyFlat
from fastai.metrics import accuracy
from allconv_fastai.core import atomic_write, find_cifar10_jpg, cpu_model
from allconv_fastai import cifar_dls
from allconv_fastai import allcnn_learner, save_run_plots

class WallClock(Callback):
    "Record the wall-clock minutes since the start of training at the end of each epoch."
    order = 95
    def __init__(self, path): self.path,self.rows = Path(path),[]
    def before_fit(self): self.t0 = time.time()
    def after_epoch(self):
        vals = dict(zip(self.recorder.metric_names[1:-1], self.recorder.values[-1]))
        self.rows.append(dict(epoch=self.epoch, minutes=(time.time()-self.t0)/60, **vals))
        with atomic_write(self.path, 'w') as f: pd.DataFrame(self.rows).to_csv(f, index=False)

def plot_minutes(out):
    "Plot `out/minutes.csv` (validation accuracy against wall-clock minutes) to `out/accuracy_vs_minutes.png`."
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    out = Path(out)
    m = pd.read_csv(out/'minutes.csv')
    fig,ax = plt.subplots(figsize=(6, 4))
    ax.plot(m.minutes, m.accuracy, marker='o', label='validation accuracy (per epoch)')
    ax.axhline(0.88, ls='--', color='grey', label='88% target'); ax.axvline(60, ls=':', color='grey')
    ax.set(xlabel='wall-clock minutes of training', ylabel='accuracy (5,000 held-out images)',
           title='All-CNN-C on CIFAR-10 training JPEGs, one CPU')
    ax.legend(); fig.tight_layout()
    with atomic_write(out/'accuracy_vs_minutes.png') as f: fig.savefig(f, format='png', dpi=100)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--minutes', type=float, default=57, help='wall-clock budget for training')
    p.add_argument('--lr', type=float, default=0.15)
    p.add_argument('--wd', type=float, default=5e-4)
    p.add_argument('--bs', type=int, default=128)
    p.add_argument('--smoothing', type=float, default=0.1)
    p.add_argument('--precision', default='auto')
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--out', default='runs/cifar10-one-hour')
    p.add_argument('--plot', metavar='RUN_DIR', help="only redraw RUN_DIR's accuracy_vs_minutes.png from its minutes.csv")
    a = p.parse_args()
    if a.plot: plot_minutes(a.plot); return
    src = find_cifar10_jpg()
    if src is None: raise SystemExit("No CIFAR-10 JPEG images found: set ALLCONV_CIFAR10_JPG to cifar10-jpg-train.tar.gz.")
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out/'config.json', 'w') as f: json.dump(dict(vars(a), data=str(src), torch=torch.__version__,
                                                                   threads=torch.get_num_threads(), cpu=cpu_model()), f, indent=2)
    torch.manual_seed(a.seed)
    dls = cifar_dls('cifar10-jpg', bs=a.bs, valid=5000, seed=a.seed, pad=4, flip=True)
    print(dls.data_name, flush=True)
    learn = allcnn_learner(dls, 'all-cnn-c', bn=True, dropout=False, lr=a.lr, wd=a.wd, precision=a.precision,
                           loss_func=LabelSmoothingCrossEntropyFlat(eps=a.smoothing), path=out)
    t0 = time.time()
    # up to 200 epochs: the budget, not the epoch count, ends training
    learn.fit_one_cycle_budget(a.minutes, a.lr, cbs=learn.run_cbs(out)+[WallClock(out/'minutes.csv')], max_epochs=200)
    train_min = (time.time()-t0)/60
    plain = learn.validate()[1]
    tp,tt = learn.mirror_tta(translate=True)
    tta = (tp.argmax(1)==tt).float().mean().item()
    res = dict(data=dls.data_name, epochs=len(pd.read_csv(out/'minutes.csv')), train_minutes=round(train_min, 2), valid_accuracy=float(plain),
               valid_accuracy_mirror_shift_tta=tta)
    with atomic_write(out/'metrics.json', 'w') as f: json.dump(res, f, indent=2)
    save_run_plots(out, learn)
    plot_minutes(out)
    print(json.dumps(res, indent=2))

if __name__ == '__main__': main()
