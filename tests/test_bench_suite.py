"""The benchmark suite (`bench/suite.py`): each measurement function on tiny sizes, with real assertions, and `--quick`
end to end: the Markdown report it writes has the rows and columns it should, with positive finite ratios. The timing
units it is built on (`allconv_fastai.speed`) are tested in their notebook. Each test stands alone; shared inputs are fixtures."""
import importlib.util, math, re
from functools import partial
from pathlib import Path
import pytest
import fastcore.test as ft

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location('bench_suite', ROOT/'bench'/'suite.py')
suite = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(suite)
from allconv_fastai import digits_dls, DenseNet, find_cifar10_jpg, all_cnn_c
from allconv_fastai.machine import cpu_has_bf16

def tiny(**kw): return all_cnn_c(widths=(8, 16), **kw)

@pytest.fixture(scope='module')
def subset(tmp_path_factory):
    "A 100-image CIFAR-10-layout folder of random JPEGs (no source given)."
    d = tmp_path_factory.mktemp('subset')
    folder,real = suite.cifar_subset(d, 100, src=d/'none')
    return d, folder, real

def test_bench_precision():
    rows = suite.bench_precision({'tiny': tiny}, bs=8, rounds=1, device='cpu', peaks={'fp32': 10., 'bf16': 20.})
    ft.test_eq([(r['net'], r['mode']) for r in rows], [('tiny', m) for m in suite.step_modes])
    ft.test_eq(rows[0]['speedup'], 1.)
    assert all(r['img_s'] > 0 and r['gflop_step'] > 0 and r['peak_frac'] > 0 for r in rows)

def test_bench_scaling():
    rows = suite.bench_scaling({'tiny': tiny}, bss=(4, 16), rounds=1, device='cpu')
    ft.test_eq([r['bs'] for r in rows], [4, 16])
    ft.test_eq(rows[0]['rel'], 1.)
    ft.test_close(rows[1]['epoch_min'], 45000/rows[1]['img_s']/60)

def test_bench_memory_efficient_block_saves_activations():
    rows = suite.bench_memory(partial(DenseNet, 16, 12, bc=True), bs=8, rounds=1, device='cpu', rss=False)
    ft.test_eq([r['variant'] for r in rows], ['plain', 'efficient'])
    assert rows[1]['saved_mb'] < 0.9*rows[0]['saved_mb']
    ft.test_eq(rows[0]['time_rel'], 1.)

def test_bench_memory_fp32_channels_last_is_fp32():
    "The library's fp32 mode on a CPU ('fp32+cl') counts fp32 activations: no autocast, as its step trains."
    f = partial(DenseNet, 16, 12, bc=True)
    saved = {m: [r['saved_mb'] for r in suite.bench_memory(f, bs=4, mode=m, rounds=1, device='cpu', rss=False)] for m in ('fp32', 'fp32+cl')}
    ft.test_close(saved['fp32+cl'], saved['fp32'], eps=1e-6)

@pytest.mark.slow
def test_step_peak_rss():
    assert 0 <= suite.step_peak_rss('densenet40-k12', bs=4) < 2000

def test_cifar_subset(subset, tmp_path):
    d, folder, real = subset
    ft.test_eq((folder.name, real), ('cifar10-jpg', False))
    ft.test_eq(len(list(folder.rglob('*.jpg'))), 100)
    ft.test_eq(len(list((folder/'train').iterdir())), 10)
    if find_cifar10_jpg():
        folder,real = suite.cifar_subset(tmp_path/'real', 50)
        ft.test_eq((real, len(list(folder.rglob('*.jpg')))), (True, 50))

@pytest.mark.slow
def test_bench_data(subset):
    d, folder, _ = subset
    rows = suite.bench_data(folder, bs=16, rounds=1, device='cpu', cache_dir=d)
    ft.test_eq([r['pipeline'] for r in rows], ['ours', 'fastai folder', 'torchvision'])
    ft.test_eq(rows[0]['ours_x'], 1.)
    assert rows[1]['ours_x'] > 1   # the per-image PIL pipeline is slower than batch slicing

def test_bench_decode(subset, tmp_path):
    _, folder, _ = subset
    r = suite.bench_decode(str(folder), tmp_path)
    ft.test_eq(r['n'], len(list(folder.rglob('*.jpg'))))
    assert r['first_s'] > 0 and r['cached_s'] > 0

def test_bench_learner():
    rows = suite.bench_learner(digits_dls(bs=32, device='cpu'), tiny, n_batch=2, rounds=2)
    ft.test_eq([r['precision'] for r in rows], ['fp32', 'bf16'])
    # timings on a shared machine can be far apart (a starved process), so only their form is checked, not their size
    assert all(r['learner_img_s'] > 0 and r['plain_img_s'] > 0 and 0 < r['ratio'] < float('inf') for r in rows), rows

def test_md_table():
    ft.test_eq(suite.md_table([dict(a=1.234, b='x'), dict(a=float('nan'))], [('a', 'A', '.1f'), ('b', 'B', str)]),
            '| A | B |\n|---|---|\n| 1.2 | x |\n| n/a |  |')

def _tables(md:str) -> dict:
    "Each '## Section' of the report -> its Markdown table as a list of rows (lists of cell strings), header first."
    out,name = {},None
    for line in md.splitlines():
        if line.startswith('## '): name = line[3:].strip(); out[name] = []
        elif name and line.startswith('|') and not re.match(r'^\|(-+\|)+$', line):
            out[name].append([c.strip() for c in line.strip().strip('|').split('|')])
    return out

def _num(s:str) -> float: return float(s.replace(',', '').rstrip('%'))

def test_quick_report_end_to_end(tmp_path, capsys, monkeypatch):
    "`python bench/suite.py --quick ...`, through its `main`: every section, printed and written alike."
    monkeypatch.chdir(tmp_path)
    out = tmp_path/'bench.md'
    suite.main(['--quick', '--reps', '1', '--n-images', '300', '--bs', '4', '--out', str(out)])
    md = out.read_text()
    assert capsys.readouterr().out.strip().startswith(md.strip()[:200])  # what it printed is what it wrote
    t = _tables(md)
    native = cpu_has_bf16()   # bf16 is compared only where the CPU computes it natively
    for sec in ('Headline ratios', 'Data pipelines', 'Learner overhead (interleaved)', 'Precision and layout',
                'Memory: DenseNet-BC-100 concatenation', 'Throughput vs batch size'):
        assert sec in t and len(t[sec]) >= (2 if sec.startswith('Learner') and not native else 3), (sec, t.get(sec))
    ft.test_eq([r[0] for r in t['Learner overhead (interleaved)'][1:]], ['fp32', 'bf16'] if native else ['fp32'])
    head = t['Headline ratios']
    assert head[0] == ['measure', 'ratio', 'target', 'met']
    measures = {row[0]: row for row in head[1:]}
    for m in ('data: ours / fastai `from_folder` (img/s)', 'Learner / plain loop, fp32 (time)',
              *(['Learner / plain loop, bf16 (time)'] if native else []), 'DenseNet-BC-100: efficient / plain saved activations (bytes)',
              'DenseNet-BC-100: efficient / plain (time per step)'):
        assert m in measures, (m, list(measures))
    for row in head[1:]:
        v = _num(row[1])
        assert math.isfinite(v) and v > 0, row
        assert row[3] in ('yes', 'NO', '-'), row
    # checkpointed concatenation saves memory deterministically, whatever the load
    assert _num(measures['DenseNet-BC-100: efficient / plain saved activations (bytes)'][1]) < 0.6
    modes = suite.suite_modes('cpu')
    ft.test_eq(modes, ('fp32', 'bf16', 'bf16+cl') if native else ('fp32', 'fp32+cl'))   # and the library's mode, bf16+cl or fp32+cl
    ft.test_eq([r[1] for r in t['Precision and layout'][1:len(modes)+1]], list(modes))
    assert ('Learner / plain loop, bf16 (time)' in measures) == native and ('bf16 left out' in md) != native
    nets = {r[0] for r in t['Throughput vs batch size'][1:]}
    assert nets == {'All-CNN-C', 'DenseNet-BC-100', 'DenseNet-40'}
    for row in t['Throughput vs batch size'][1:] + t['Precision and layout'][1:] + t['Data pipelines'][1:]:
        assert all(math.isfinite(_num(c)) and _num(c) > 0 for c in row[-3:]), row
    assert 'Load average' in md and 'threads' in md

def test_unknown_sections_are_refused_before_anything_is_written(tmp_path):
    ft.test_fail(lambda: suite.run_bench(only=['nothing']), contains='Unknown sections')
    with pytest.raises(SystemExit) as e: suite.main(['--only', 'nonsense', '--out', str(tmp_path/'b.md')])
    assert e.value.code != 0 and 'Unknown sections' in str(e.value.code)
    assert not (tmp_path/'b.md').exists()

def test_suite_modes_follow_the_library(monkeypatch):
    "bf16 is compared only where the library's 'auto' picks it; elsewhere fp32 and the library's own mode."
    for auto,best,want in (('fp32', 'fp32+cl', ('fp32', 'fp32+cl')), ('bf16', 'bf16+cl', ('fp32', 'bf16', 'bf16+cl')),
                           ('fp16', 'fp16+cl', ('fp32', 'fp16+cl'))):   # an AVX2-only CPU, a bf16 CPU or GPU, an older GPU
        monkeypatch.setattr(suite, 'resolve_precision', lambda p, d=None, auto=auto: auto)
        monkeypatch.setattr(suite, 'best_mode', lambda d=None, best=best: best)
        ft.test_eq(suite.suite_modes('cpu'), want)

def test_summary_without_bf16():
    "The headline ratios of a result with no bf16 rows (an AVX2-only CPU): the fp32+cl rows, nothing of bf16."
    p = [dict(net=n, mode=m, img_s=v, speedup=v/10) for n in ('All-CNN-C', 'All-CNN-C (BN)') for m,v in (('fp32', 10.), ('fp32+cl', 12.))]
    res = dict(modes=('fp32', 'fp32+cl'), best_mode='fp32+cl', precision=p, learner=[dict(precision='fp32', ratio=1.01)])
    rows = {r['measure']: r['value'] for r in suite.summary_rows(res)}
    ft.test_eq(rows, {'Learner / plain loop, fp32 (time)': 1.01, 'All-CNN-C: fp32+cl / fp32 (img/s)': 1.2,
                      'All-CNN-C (BN): fp32+cl / fp32 (img/s)': 1.2, 'All-CNN-C: with BN / without, fp32 (time per step)': 1.0,
                      'All-CNN-C: with BN / without, fp32+cl (time per step)': 1.0})
