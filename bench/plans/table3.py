"""The Table 3 campaign: the All-CNN paper's twelve nets on the CIFAR-10 JPEGs (45,000 train / 5,000 validation,
seed 42), at an equal budget of 10 epochs each, every lr chosen on validation by a short sweep; then the C row in the
paper's own setting, ablations of All-CNN-C that change one thing at a time, and DenseNet-BC-100 (k=12) at the same
budget.

Run it (resumable, safe to kill; each finished run is filed in bench/results/table3/<run>/):

    allconv-campaign table3 --commit        # or: python -m allconv_fastai.campaign table3
    allconv-campaign table3 --status        # what is filed, what is left, hours left on this machine
    allconv-campaign table3 --report        # regenerate README.md, the CSVs and the bar charts in bench/results/table3

Budget: 10 epochs a net: the most the project's machines can finish for all twelve nets and the runs after them, in
a campaign over several sittings. `--status` estimates the hours left on the machine it runs
on from the runs filed there; each filed run's minutes and CPU are in bench/results/table3/README.md. DenseNet-BC-100
then trains at the same budget: it does about as many FLOPs per image as All-CNN-C (1.06x, `campaign.forward_flops`),
but a CPU runs them at a fraction of All-CNN-C's rate (bench/results/densenet-speed.txt: 0.13-0.15 in bf16 on the AMX
Xeon; bench/results/densenet-variants-avx2.txt: 0.33-0.40 in fp32 at 2 threads on the AVX2 EPYC), so it takes several times as long.
"""
from allconv_fastai.campaign import Plan, best_lr
from allconv_fastai.config import RunConfig
from allconv_fastai.train import paper_lrs
from allconv_fastai.tables import paper_table3
from allconv_fastai.tables import table3_report

plan = Plan('table3', __doc__, report=table3_report)
EPOCHS = 10
DATA = dict(data='cifar10-jpg', valid=5000, seed=42, bs=128)
# the fast recipe, as the shipped All-CNN-C was trained: batch norm, no dropout, flip + 4-px translate, one-cycle,
# label smoothing 0.1, SGD with one-cycle momentum 0.95-0.85-0.95, weight decay 5e-4, bf16 autocast where the CPU computes it natively
FAST = dict(DATA, recipe='fast', wd=5e-4, label_smoothing=0.1)
# the paper's setting: dropout, no batch norm, no augmentation, its step schedule (x0.1 at 200/250/300 of 350 epochs,
# scaled to the budget), SGD momentum 0.9, weight decay 1e-3, no label smoothing, and PyTorch's own layer init (see
# section 1b for why not the library's default)
PAPER = dict(DATA, recipe='paper', augment=False, tta=False, init='torch')
SWEEP = dict(epochs=2, n_train=10_000, tta=False)   # the lr sweep: 2 epochs on a seeded, stratified 10,000 of the 45,000
NETS = tuple(paper_table3)                          # model-a ... all-cnn-c

def sweep(prefix, lrs=paper_lrs, **settings):
    for lr in lrs: plan.add(f"{prefix}-lr{lr:g}", keep_weights=False, **{**settings, **SWEEP, 'lr': lr})

def chosen(prefix, **settings):
    "Settings whose lr is the one the sweep `prefix` chose on validation."
    return lambda done: RunConfig(**{**settings, 'lr': best_lr(done, prefix + '-lr')})

# 1. Table 3, fast recipe: the sweep, then each net for the budget at its chosen lr
for a in NETS: sweep(f"sweep/{a}", arch=a, **FAST)
for a in NETS: plan.add(f"table3/{a}", chosen(f"sweep/{a}", arch=a, epochs=EPOCHS, **FAST))

# 1b. The C row in the paper's own setting, its lrs swept the same way. The paper's recipe names no init. From the
#     library's default (fastai's init_cnn, kaiming-normal) this setting did not train: the first sweep runs, since
#     removed (commits 8cb54db d79a49e fceb928 9c0e5c9 56812d4 bd4d957), went NaN within epoch 0 for Model-C at lrs
#     0.25, 0.1 and 0.05 and for Strided-CNN-C at 0.25, and ended at chance (10.0%) for Model-C at 0.01 and
#     Strided-CNN-C at 0.1. bench/paper_setting_probe.py shows how (bench/results/paper-setting-probe.txt): the first
#     steps' loss is 14-36, and by the 5th step one layer's ReLUs are all inactive, so every image gets the same class
#     scores. From PyTorch's own init (`models.init.torch_init`: any PyTorch net's default, and the 2020 PyTorch
#     reproduction names no other) the nets start with class scores near zero and the loss falls at these lrs
#     (bench/results/paper-setting-probe-torch-init.txt), so the row runs from that init.
C_ROW = ('model-c', 'strided-cnn-c', 'convpool-cnn-c', 'all-cnn-c')
for a in C_ROW: sweep(f"sweep-paper/{a}", arch=a, **PAPER)
for a in C_ROW: plan.add(f"paper-setting/{a}", chosen(f"sweep-paper/{a}", arch=a, epochs=EPOCHS, **PAPER))

# 2. Ablations of All-CNN-C, one change each from table3/all-cnn-c (the baseline: batch norm, no dropout, SGD,
#    one-cycle, per-channel normalisation, default init, no shortcuts). Changes that move the usable lr range
#    (normalisation layers, the optimizer) get their own sweep; the others keep the baseline's lr.
C = dict(FAST, arch='all-cnn-c', epochs=EPOCHS)
sweep("sweep-ablation/dropout", **{**C, 'bn': False, 'dropout': True})
sweep("sweep-ablation/neither", **{**C, 'bn': False, 'dropout': False})
sweep("sweep-ablation/adam", lrs=(0.01, 0.003, 0.001, 0.0003), **{**C, 'opt': 'adam', 'wd': 0.01})
plan.add("ablation/dropout", chosen("sweep-ablation/dropout", **{**C, 'bn': False, 'dropout': True}))
plan.add("ablation/neither", chosen("sweep-ablation/neither", **{**C, 'bn': False, 'dropout': False}))
plan.add("ablation/adam", chosen("sweep-ablation/adam", **{**C, 'opt': 'adam', 'wd': 0.01}))   # fastai's Adam: decoupled wd, its default 0.01
for name,change in (('bn-and-dropout', dict(dropout=True)), ('lsuv', dict(lsuv=True)), ('zca', dict(zca=True)),
                    ('step-schedule', dict(schedule='step')), ('nesterov', dict(opt='nesterov')), ('residual', dict(residual=True))):
    plan.add(f"ablation/{name}", chosen("sweep/all-cnn-c", **{**C, **change}))

# 3. After Table 3: DenseNet-BC-100 (k=12) on the same data at the same budget, with DenseNet's fast recipe (its own
#    batch norm, flip + translate, one-cycle, label smoothing 0.1, SGD with Nesterov momentum, weight decay 1e-4),
#    its lr chosen by the same sweep
D = dict(DATA, arch='densenet-bc100-k12', recipe='fast')
sweep("sweep/densenet-bc100-k12", **D)
plan.add("densenet/densenet-bc100-k12", chosen("sweep/densenet-bc100-k12", **D, epochs=EPOCHS))
