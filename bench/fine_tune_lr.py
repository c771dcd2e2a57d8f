"""`fine_tune` from the shipped All-CNN-C at fastai's default `base_lr` (2e-3, an Adam rate) against the learner's own
lr (the fast recipe's SGD rate, 0.1), the reason `AllconvLearner.fine_tune` defaults `base_lr` to the learner's lr.

Two small transfer tasks, as tests/test_transfer.py builds them: three relabelled groups of CIFAR-10 classes (vehicle,
pet, wild; 30 training and 100 validation images each, from the shared CIFAR-10 JPEGs) and the digits 0-4 (100
training images at 32x32, the rest for validation). Each task and lr is run for three seeds with `fine_tune(4)`;
prints the validation accuracy of each run, with the machine, threads and load.

    OMP_NUM_THREADS=1 python bench/fine_tune_lr.py          # what bench/results/fine-tune-lr.txt holds
"""
import argparse, tempfile, time
from pathlib import Path
import torch
from fastai.torch_core import set_seed
from allconv_fastai import allcnn_learner, cifar_dls, pretrained_names
from allconv_fastai.machine import cpu_model, load_average
from allconv_fastai.test_utils import cifar_folder, digits5_dls

GROUPS = {'vehicle': ['airplane', 'automobile', 'ship', 'truck'], 'pet': ['cat', 'dog'], 'wild': ['bird', 'deer', 'frog', 'horse']}

def fine_tuned(make_dls, base_lr, seed, epochs):
    "Validation accuracy after `fine_tune(epochs)` from the shipped weights (`base_lr` None: the learner's lr)."
    set_seed(seed)
    learn = allcnn_learner(make_dls(), 'all-cnn-c', pretrained=True)
    with learn.no_bar(), learn.no_logging():
        learn.fine_tune(epochs, base_lr=base_lr)
        return float(learn.validate()[1])

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--seeds', type=int, default=3, help='seeds per task and lr')
    p.add_argument('--epochs', type=int, default=4, help='fine_tune epochs (after 1 of the head alone)')
    a = p.parse_args()
    if 'all-cnn-c' not in pretrained_names(): raise SystemExit("No shipped All-CNN-C weights in this install.")
    tmp = Path(tempfile.mkdtemp())
    tasks = {'digits 0-4 (100 training images)': digits5_dls}
    root = cifar_folder(tmp/'groups', GROUPS, n_train=30, n_valid=100)
    if root is not None: tasks = {'CIFAR-10 classes in 3 groups (90 training images)': lambda: cifar_dls(root, bs=16, cache_dir=tmp/'cache'), **tasks}
    else: print("no CIFAR-10 JPEGs (set ALLCONV_CIFAR10_JPG): the relabelled CIFAR-10 task is left out")
    print(f"{cpu_model()}; {torch.get_num_threads()} threads; load average {load_average()} at start")
    t0 = time.time()
    for name,make in tasks.items():
        for base_lr,label in ((2e-3, "fastai's default base_lr 2e-3"), (None, "the learner's lr (0.1)")):
            accs = [fine_tuned(make, base_lr, s, a.epochs) for s in range(a.seeds)]
            print(f"{name}, fine_tune({a.epochs}) at {label}: valid accuracy {', '.join(f'{x:.2f}' for x in accs)} (seeds 0-{a.seeds-1})", flush=True)
    print(f"{time.time()-t0:.0f} s; load average {load_average()} at end")

if __name__ == '__main__': main()
