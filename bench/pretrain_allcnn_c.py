"""Train the All-CNN-C that ships with the package, through the library's one training path, and export it.

The settings are the 'shipped' recipe (batch norm, no dropout, flip + 4-pixel translation, label smoothing 0.1,
one one-cycle schedule over 35 epochs to lr 0.15, weight decay 5e-4, batch size 128) on the CIFAR-10 training
JPEGs, 45,000 for training and the seeded 5,000 for validation (this data set has no test split, so every number
is a validation number). `train_run` writes and resumes the run folder; `export_run` writes the final epoch's
weights (chosen before training, not by peeking at validation) and the model card generated from the run:

    python bench/pretrain_allcnn_c.py --out runs/shipped            # train, or continue the run in --out
    python bench/pretrain_allcnn_c.py --out runs/shipped --export   # -> allconv_fastai/weights/
    python bench/pretrain_allcnn_c.py --card                        # regenerate the shipped card from its run

The same run from a shell: `allconv-train --data cifar10-jpg --recipe shipped --valid 5000 --out runs/shipped`.
"""
import argparse
from pathlib import Path

SHIPPED_RUN = Path(__file__).resolve().parent/'results'/'pretrained-all-cnn-c'   # the run behind the shipped weights

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default='runs/shipped-all-cnn-c', help='the run folder (continued where it holds a run)')
    p.add_argument('--export', action='store_true', help="write the finished run's final weights and card into the package")
    p.add_argument('--card', action='store_true', help="regenerate the shipped card from its run and the shipped weights")
    a = p.parse_args(argv)
    import json
    from allconv_fastai.pretrained import weights_dir
    from allconv_fastai.card import card_from_run, export_run
    if a.card:
        from allconv_fastai.core import write_json
        card = card_from_run(SHIPPED_RUN, weights_dir()/'all-cnn-c.safetensors')
        write_json(weights_dir()/'all-cnn-c.json', card)
    elif a.export: card = export_run(a.out)
    else:
        from allconv_fastai.config import RunConfig
        from allconv_fastai.train import train_run
        out = Path(a.out)
        m = (train_run(out, resume=True) if (out/'config.json').exists() else
             train_run(out, RunConfig(arch='all-cnn-c', recipe='shipped', data='cifar10-jpg', valid=5000, seed=42)))
        print(json.dumps(m, indent=1)); return
    print(json.dumps({k: v for k,v in card.items() if k not in ('mean', 'std', 'vocab', 'config', 'metrics')}, indent=1))

if __name__ == '__main__': main()
