"""The benchmark suite's own checks (`bench/suite.py`), cell by cell as they stood in its notebook: each measurement
function on tiny sizes, with real assertions (ratios, FLOP counts, learning on a fixed batch). Cells share one
namespace, in order, as in the notebook."""
import contextlib, importlib.util, io, sys, tempfile, time
from functools import partial
from pathlib import Path
import pytest, torch
import fastcore.test as ft

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location('bench_suite', ROOT/'bench'/'suite.py')
suite = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(suite)
from allconv_fastai import digits_dls, DenseNet, find_cifar10_jpg, resolve_precision
NS = {**vars(suite), 'digits_dls': digits_dls, 'DenseNet': DenseNet, 'resolve_precision': resolve_precision,
      'test_eq': ft.test_eq, 'test_fail': ft.test_fail, 'test_close': ft.test_close, 'partial': partial, 'Path': Path,
      'tempfile': tempfile, 'time': time, 'io': io, 'contextlib': contextlib, 'torch': torch}

def run(src): exec(src, NS)

def test_machine_info():
    run("info = machine_info('cpu')\nprint(info)\ntest_eq(info['torch'], torch.__version__)\nassert info['cores'] >= 1 and len(info['load_avg'].split()) == 3")

def test_interleave():
    run("ts = interleave(dict(short=lambda: time.sleep(0.01), long=lambda: time.sleep(0.03)), rounds=3)\ntest_eq([len(v) for v in ts.values()], [3, 3])\nr = paired_ratio(ts, 'long', 'short')\nprint(f'{r:.2f}')\nassert 1.8 < r < 4")

def test_matmul_gflops():
    run("g32 = matmul_gflops(torch.float32, 256, 2, 'cpu')\nprint(f'{g32:.1f} GFLOP/s')\nassert 0.1 < g32 < 1e5")

def test_train_flops():
    run('m = torch.nn.Sequential(torch.nn.Linear(10, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))\ntest_eq(train_flops(m, torch.randn(4, 10), torch.tensor([0, 1, 2, 0])), 2*4*(10*8+8*3) + 2*2*4*(10*8+8*3) - 2*4*10*8)')

def test_train_step_fn():
    run("tiny = lambda **kw: all_cnn_c(widths=(8, 16), **kw)\nst = train_step_fn(tiny(), 'bf16+cl', bs=8, device='cpu')\nl0 = st().item()\nfor _ in range(20): l = st().item()\nprint(f'{l0:.3f} -> {l:.3f}')\nassert l < l0  # the fixed batch is being learned\ntest_fail(lambda: train_step_fn(tiny(), 'fp8'), contains='Unknown mode')\ntest_fail(lambda: train_step_fn(tiny(), 'fp16', device='cpu'), contains='needs a CUDA device')")

def test_best_mode():
    run("test_eq(best_mode('cpu') in modes, True)\ntest_eq(best_mode('cpu'), 'bf16+cl' if cpu_has_bf16() else 'fp32')\ntest_eq(best_mode('cpu'), {'fp32': 'fp32', 'bf16': 'bf16+cl'}[resolve_precision('auto', 'cpu')])  # the library's own choice")

def test_bench_precision():
    run("rows = bench_precision({'tiny': tiny}, bs=8, rounds=1, device='cpu', peaks={'fp32': 10., 'bf16': 20.})\ntest_eq([(r['net'], r['mode']) for r in rows], [('tiny', m) for m in modes])\ntest_eq(rows[0]['speedup'], 1.)\nassert all(r['img_s'] > 0 and r['gflop_step'] > 0 and r['peak_frac'] > 0 for r in rows)")

def test_bench_scaling():
    run("rows = bench_scaling({'tiny': tiny}, bss=(4, 16), rounds=1, device='cpu')\ntest_eq([r['bs'] for r in rows], [4, 16])\ntest_eq(rows[0]['rel'], 1.)\ntest_close(rows[1]['epoch_min'], 45000/rows[1]['img_s']/60)")

def test_bench_memory():
    run("rows = bench_memory(partial(DenseNet, 16, 12, bc=True), bs=8, rounds=1, device='cpu', rss=False)\nfor r in rows: print(r)\ntest_eq([r['variant'] for r in rows], ['plain', 'efficient'])\nassert rows[1]['saved_mb'] < 0.9*rows[0]['saved_mb']\ntest_eq(rows[0]['time_rel'], 1.)")

@pytest.mark.slow
def test_step_peak_rss():
    run("mb = step_peak_rss('densenet40-k12', bs=4)\nprint(f'{mb:.1f} MB')\nassert 0 <= mb < 2000")

def test_cifar_subset():
    run("d = Path(tempfile.mkdtemp())\nfolder,real = cifar_subset(d, 100, src=d/'none')  # no such source: random JPEGs\ntest_eq((folder.name, real), ('cifar10-jpg', False))\ntest_eq(len(list(folder.rglob('*.jpg'))), 100)\ntest_eq(len(list((folder/'train').iterdir())), 10)\nif find_cifar10_jpg():\n    folder,real = cifar_subset(d/'real', 50)\n    test_eq((real, len(list(folder.rglob('*.jpg')))), (True, 50))")

@pytest.mark.slow
def test_bench_data():
    run("rows = bench_data(folder, bs=16, rounds=1, device='cpu', cache_dir=d)\nfor r in rows: print(r)\ntest_eq([r['pipeline'] for r in rows], ['ours', 'fastai folder', 'torchvision'])\ntest_eq(rows[0]['ours_x'], 1.)\nassert rows[1]['ours_x'] > 1  # the per-image PIL pipeline is slower than batch slicing, even on 50 images")

def test_bench_decode():
    run("r = bench_decode(str(folder), Path(tempfile.mkdtemp()))\nprint(r)\ntest_eq(r['n'], len(list(folder.rglob('*.jpg'))))\nassert r['first_s'] > 0 and r['cached_s'] > 0")

def test_bench_learner():
    run("ddls = digits_dls(bs=32, device='cpu')\nrows = bench_learner(ddls, tiny, n_batch=2, rounds=2)\nfor r in rows: print(r)\ntest_eq([r['precision'] for r in rows], ['fp32', 'bf16'])\nassert all(0.2 < r['ratio'] < 5 for r in rows)")

def test_md_table():
    run("test_eq(md_table([dict(a=1.234, b='x'), dict(a=float('nan'))], [('a', 'A', '.1f'), ('b', 'B', str)]),\n        '| A | B |\\n|---|---|\\n| 1.2 | x |\\n| n/a |  |')")

def test_main():
    run("out = Path(tempfile.mkdtemp())/'bench.md'\nwith contextlib.redirect_stdout(io.StringIO()):\n    main(['--quick', '--only', 'learner', '--n-images', '200', '--reps', '1', '--bs', '8', '--out', str(out)])\nmd = out.read_text()\nprint(md)\nassert '## Learner overhead (interleaved)' in md and 'Learner / plain loop, bf16 (time)' in md\ntest_fail(lambda: run_bench(only=['nothing']), contains='Unknown sections')")
