"""The Table 3 campaign on a GPU, at a longer budget: every run of bench/plans/table3.py (the twelve nets, the paper's
C row, the ablations and DenseNet-BC-100, each lr chosen by the same 2-epoch sweeps on 10,000 images), with the same
data, recipes and batch size, trained for 20 epochs instead of 10. The results are a plan of their own,
bench/results/table3-gpu/, beside the CPU campaign's: the two differ in budget and in the machine.

On a machine with a GPU (resumable, safe to kill; each finished run is filed in bench/results/table3-gpu/<run>/):

    allconv-campaign table3-gpu --until +10     # train for 10 minutes, then stop cleanly
    bash bench/gpu_campaign.sh --minutes 6      # on a GPU machine without fastai: 6 minutes, then pack what it filed

    allconv-campaign table3-gpu --status        # what is filed, what is left
    allconv-campaign table3-gpu --report        # regenerate README.md, the CSVs and the bar charts

Budget: 20 epochs, twice the CPU campaign's. On an H200 the 60-epoch All-CNN-C of the GPU check took about a minute
at batch 512 (bench/results/gpu-check), so the whole plan is tens of minutes of one GPU, spread over the sittings
that have one.
"""
from functools import partial
from pathlib import Path
from allconv_fastai.campaign import Plan, PlannedRun, load_plan
from allconv_fastai.config import RunConfig
from allconv_fastai.tables import table3_report

EPOCHS = 20
base = load_plan(Path(__file__).with_name('table3.py'))
plan = Plan('table3-gpu', __doc__, report=partial(table3_report, epochs=EPOCHS))

def longer(cfg):
    "The settings `cfg` (a `RunConfig`, or a function of the finished runs' metrics) at the plan's budget, every default rule applied again (the paper's step schedule scales with the epochs)."
    if isinstance(cfg, RunConfig): return RunConfig(**{**cfg.asked, 'epochs': EPOCHS})
    return lambda done: longer(cfg(done))

for name,r in base.runs.items():   # the sweeps keep their 2 epochs on 10,000 images; every other run gets the budget
    plan.runs[name] = PlannedRun(name, r.cfg if name.startswith('sweep') else longer(r.cfg), r.keep_weights)
