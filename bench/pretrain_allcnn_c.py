"""Train the All-CNN-C that ships with the package: the fast recipe, one one-cycle schedule over a fixed number of epochs.

CIFAR-10 training JPEGs (q75), 45,000 for training and the seeded 5,000 of the one-hour recipe held out for
validation (this data set has no test split, so every number is a validation number). Batch norm, no dropout,
flip + 4-pixel translation, label smoothing 0.1, lr 0.15, wd 5e-4, bs 128, bf16 autocast + channels_last where the
CPU computes bf16 natively. The run is resumable: kill it at any point and run the same command with `--resume`.

    python bench/pretrain_allcnn_c.py --epochs 26 --out bench/results/pretrained-all-cnn-c
    python bench/pretrain_allcnn_c.py --resume --out bench/results/pretrained-all-cnn-c
    python bench/pretrain_allcnn_c.py --export --out bench/results/pretrained-all-cnn-c   # -> allconv_fastai/weights/

Writes a run directory: config.json (with the CPU model), history.csv, minutes.csv (wall-clock minutes of training
per epoch, summed across resumes), last.pth/best.pth, metrics.json and curves.png. `--export` then writes the final
epoch's weights (`last.pth`: the end of the one-cycle schedule, chosen before training, not by peeking at validation)
to the package as `allconv_fastai/weights/all-cnn-c.safetensors` with its model card `all-cnn-c.json`.
"""
import argparse, json, time
from pathlib import Path
import pandas as pd, torch
from fastai.callback.core import Callback
from fastai.losses import LabelSmoothingCrossEntropyFlat
from allconv_fastai.core import cpu_model

class WallClock(Callback):
    "Append each epoch's wall-clock minutes (cumulative across resumes) and metrics to `minutes.csv`."
    order = 95
    def __init__(self, path, start_minutes=0.): self.path,self.m0 = Path(path),start_minutes
    def before_fit(self): self.t0 = time.time()
    def before_epoch(self): self.trained = False
    def after_train(self): self.trained = True
    def after_epoch(self):
        if not self.trained: return   # an epoch skipped on resume: its row is already in the file
        vals = dict(zip(self.recorder.metric_names[1:-1], self.recorder.values[-1]))
        row = pd.DataFrame([dict(epoch=self.epoch, minutes=self.m0+(time.time()-self.t0)/60, **vals)])
        old = pd.read_csv(self.path) if self.path.exists() else None
        row = row if old is None else pd.concat([old[old.epoch < self.epoch], row])
        from allconv_fastai.core import atomic_write
        with atomic_write(self.path, 'w') as f: row.to_csv(f, index=False)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--epochs', type=int, default=26)
    p.add_argument('--lr', type=float, default=0.15)
    p.add_argument('--wd', type=float, default=5e-4)
    p.add_argument('--bs', type=int, default=128)
    p.add_argument('--smoothing', type=float, default=0.1)
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--out', default='bench/results/pretrained-all-cnn-c')
    p.add_argument('--resume', action='store_true', help='continue the run in --out from its last finished epoch')
    p.add_argument('--export', action='store_true', help="write the finished run's final weights and model card into the package")
    a = p.parse_args()
    if a.export: return export(Path(a.out))
    from allconv_fastai.core import atomic_write, find_cifar10_jpg
    from allconv_fastai import cifar_dls
    from allconv_fastai import allcnn_learner, save_run_plots
    from fastai.torch_core import set_seed
    out = Path(a.out)
    if a.resume:
        cfg = json.loads((out/'config.json').read_text())
        for k in ('epochs', 'lr', 'wd', 'bs', 'smoothing', 'seed'): setattr(a, k, cfg[k])
    else:
        if (out/'config.json').exists(): raise SystemExit(f"{out} already holds a run: pass --resume, or another --out.")
        cfg = dict(epochs=a.epochs, lr=a.lr, wd=a.wd, bs=a.bs, smoothing=a.smoothing, seed=a.seed, arch='all-cnn-c',
                   bn=True, dropout=False, pad=4, flip=True, valid=5000, data='cifar10-jpg', precision='auto',
                   torch=torch.__version__, threads=torch.get_num_threads(), cpu=cpu_model())
        out.mkdir(parents=True, exist_ok=True)
        with atomic_write(out/'config.json', 'w') as f: json.dump(cfg, f, indent=1)
    if find_cifar10_jpg() is None: raise SystemExit("No CIFAR-10 JPEGs: set ALLCONV_CIFAR10_JPG to cifar10-jpg-train.tar.gz.")
    dls = cifar_dls('cifar10-jpg', bs=a.bs, valid=5000, seed=a.seed, pad=4, flip=True)
    print(dls.data_name, '|', cpu_model(), flush=True)
    set_seed(a.seed)
    learn = allcnn_learner(dls, 'all-cnn-c', bn=True, dropout=False, lr=a.lr, wd=a.wd, precision='auto',
                           loss_func=LabelSmoothingCrossEntropyFlat(eps=a.smoothing), path=out)
    start = learn.resume(out) if a.resume and (out/'last.pth').exists() else 0
    m0 = 0.
    if start and (out/'minutes.csv').exists():
        mc = pd.read_csv(out/'minutes.csv'); m0 = float(mc[mc.epoch < start].minutes.max())
    print(f"epochs {start}..{a.epochs-1} of {a.epochs} (minutes so far {m0:.1f}) on {cpu_model()}", flush=True)
    if start < a.epochs:
        learn.fit_one_cycle(a.epochs, a.lr, cbs=learn.run_cbs(out, resume=start > 0)+[WallClock(out/'minutes.csv', m0)],
                            start_epoch=start)
    plain = float(learn.validate()[1])
    tp,tt = learn.mirror_tta()
    tta = float((tp.argmax(1)==tt).float().mean())
    mc = pd.read_csv(out/'minutes.csv')
    res = dict(data=dls.data_name, epochs=a.epochs, train_minutes=round(float(mc.minutes.max()), 1), cpu=cpu_model(),
               valid_accuracy=plain, valid_accuracy_mirror_tta=tta)
    with atomic_write(out/'metrics.json', 'w') as f: json.dump(res, f, indent=1)
    save_run_plots(out, learn)
    print(json.dumps(res, indent=1))

def export(out:Path, dest:Path=Path(__file__).resolve().parent.parent/'allconv_fastai'/'weights'):
    "Write `out`'s final weights as safetensors and their model card into `dest`."
    import datetime, hashlib
    from safetensors.torch import save as st_save
    from allconv_fastai.core import atomic_write
    from allconv_fastai import cifar_dls
    from allconv_fastai.runs import load_checkpoint
    cfg,m = json.loads((out/'config.json').read_text()),json.loads((out/'metrics.json').read_text())
    state = load_checkpoint(out/'last.pth')['model']
    b = st_save({k: v.contiguous() for k,v in state.items()})
    dls = cifar_dls('cifar10-jpg', bs=cfg['bs'], valid=5000, seed=cfg['seed'], pad=4, flip=True)
    mean,std = (t.flatten().tolist() for t in dls.stats)
    card = dict(arch='all-cnn-c', paper_name='All-CNN-C (Springenberg et al., 2015)', file='all-cnn-c.safetensors',
                sha256=hashlib.sha256(b).hexdigest(), model_kw=dict(bn=True, dropout=False), image_size=32, vocab=list(dls.vocab),
                mean=mean, std=std,
                data="CIFAR-10 training images re-encoded as 32x32 JPEG at quality 75 ('CIFAR-10 (JPEG q75)'), not the official files",
                split=f"{m['data']}: 45,000 for training, the seeded (42), class-stratified 5,000 of the one-hour recipe for validation",
                recipe=(f"fast recipe: batch norm, no dropout, flip + 4-pixel translation, label smoothing {cfg['smoothing']}, "
                        f"one-cycle over {cfg['epochs']} epochs to lr {cfg['lr']}, SGD momentum 0.9 (one-cycle 0.95-0.85), "
                        f"weight decay {cfg['wd']}, batch size {cfg['bs']}, bf16 autocast + channels_last where the CPU computes bf16"),
                epochs=cfg['epochs'], train_minutes=m['train_minutes'], cpu=cfg['cpu'], threads=cfg['threads'], torch=cfg['torch'],
                weights='the final epoch (last.pth), chosen before training',
                valid_accuracy=round(m['valid_accuracy'], 4), valid_accuracy_mirror_tta=round(m['valid_accuracy_mirror_tta'], 4),
                limits=["trained and evaluated on JPEG q75 re-encodings of the CIFAR-10 training images, not the official files",
                        "no test split was used: every accuracy here is a validation accuracy on 5,000 held-out training images",
                        "expects 32x32 RGB images normalised with the mean and std above (the learners do this when pretrained=True)"],
                command=f"python bench/pretrain_allcnn_c.py --epochs {cfg['epochs']} --out RUN_DIR, then --export --out RUN_DIR",
                exported=datetime.date.today().isoformat())
    dest.mkdir(parents=True, exist_ok=True)
    with atomic_write(dest/card['file']) as f: f.write(b)
    with atomic_write(dest/'all-cnn-c.json', 'w') as f: json.dump(card, f, indent=1)
    print(json.dumps({k: v for k,v in card.items() if k not in ('mean', 'std', 'vocab')}, indent=1))

if __name__ == '__main__': main()
