"""All-CNN-C on the real CIFAR-10 training images (JPEG q75), trained on this machine's CPU for about an hour.

The shipped net's recipe ('shipped': batch norm, no dropout, flip + 4-pixel translation, label smoothing 0.1, lr 0.15,
wd 5e-4, batch size 128) on a wall-clock budget instead of a number of epochs: `RunConfig(minutes=...)` stretches the
one-cycle schedule over as many whole epochs as fit, re-planned from the measured time per epoch, so the run fits
the hour on a busy machine too, with fewer epochs. 5,000 training images are held out (seeded) for validation;
there is no test split in this data set, so every number here is a validation number.

    python bench/cifar10_one_hour.py --minutes 57 --out runs/cifar10-one-hour

Trains through `train_run` (the usual run folder: config.json, data.json, history.csv with minutes per epoch,
last.pth/best.pth, metrics.json, curves.png, lr.png) and draws `accuracy_vs_minutes.png`. The same run from a shell:
`allconv-train --data cifar10-jpg --recipe shipped --valid 5000 --epochs 200 --minutes 57 --out RUN`.
"""
import argparse, json

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--minutes', type=float, default=57, help='wall-clock budget for training')
    p.add_argument('--out', default='runs/cifar10-one-hour')
    p.add_argument('--precision', default='auto')
    p.add_argument('--plot', metavar='RUN_DIR', help="only redraw RUN_DIR's accuracy_vs_minutes.png from its history.csv")
    a = p.parse_args(argv)
    from allconv_fastai.plots import plot_minutes
    if not a.plot:
        from allconv_fastai.config import RunConfig
        from allconv_fastai.train import train_run
        m = train_run(a.out, RunConfig(arch='all-cnn-c', recipe='shipped', data='cifar10-jpg', valid=5000, seed=42,
                                       epochs=200, minutes=a.minutes, precision=a.precision))   # the budget, not 200 epochs, ends training
        print(json.dumps(m, indent=1))
    print(plot_minutes(a.plot or a.out, targets=(0.88,), budget=60, title='All-CNN-C on CIFAR-10 training JPEGs, one CPU'))

if __name__ == '__main__': main()
