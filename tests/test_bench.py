"""`python bench/suite.py --quick` end to end at tiny sizes: it runs, writes the Markdown report, and the report's tables
have the rows and columns they should, with positive finite ratios."""
import math, os, re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def _tables(md:str) -> dict:
    "Each '## Section' of the report -> its Markdown table as a list of rows (lists of cell strings), header first."
    out,name = {},None
    for line in md.splitlines():
        if line.startswith('## '): name = line[3:].strip(); out[name] = []
        elif name and line.startswith('|') and not re.match(r'^\|(-+\|)+$', line):
            out[name].append([c.strip() for c in line.strip().strip('|').split('|')])
    return out

def _num(s:str) -> float: return float(s.replace(',', '').rstrip('%'))

def test_bench_quick(tmp_path):
    out = tmp_path/'bench.md'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg'}
    cmd = [sys.executable, str(ROOT/'bench'/'suite.py'),
           '--quick', '--reps', '1', '--n-images', '300', '--bs', '4', '--out', str(out)]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    md = out.read_text()
    assert r.stdout.strip().startswith(md.strip()[:200])  # what it printed is what it wrote
    t = _tables(md)
    for sec in ('Headline ratios', 'Data pipelines', 'Learner overhead (interleaved)', 'Precision and layout',
                'Memory: DenseNet-BC-100 concatenation', 'Throughput vs batch size'):
        assert sec in t and len(t[sec]) >= 3, (sec, t.get(sec))
    head = t['Headline ratios']
    assert head[0] == ['measure', 'ratio', 'target', 'met']
    measures = {row[0]: row for row in head[1:]}
    for m in ('data: ours / fastai `from_folder` (img/s)', 'Learner / plain loop, fp32 (time)',
              'Learner / plain loop, bf16 (time)', 'DenseNet-BC-100: efficient / plain saved activations (bytes)',
              'DenseNet-BC-100: efficient / plain (time per step)'):
        assert m in measures, (m, list(measures))
    for row in head[1:]:
        v = _num(row[1])
        assert math.isfinite(v) and v > 0, row
        assert row[3] in ('yes', 'NO', '-'), row
    # checkpointed concatenation saves memory deterministically, whatever the load
    assert _num(measures['DenseNet-BC-100: efficient / plain saved activations (bytes)'][1]) < 0.6
    assert [r[1] for r in t['Precision and layout'][1:4]] == ['fp32', 'bf16', 'bf16+cl']
    nets = {r[0] for r in t['Throughput vs batch size'][1:]}
    assert nets == {'All-CNN-C', 'DenseNet-BC-100', 'DenseNet-40'}
    for row in t['Throughput vs batch size'][1:] + t['Precision and layout'][1:] + t['Data pipelines'][1:]:
        assert all(math.isfinite(_num(c)) and _num(c) > 0 for c in row[-3:]), row
    assert 'Load average' in md and 'threads' in md

def test_bench_rejects_bad_sections(tmp_path):
    cmd = [sys.executable, str(ROOT/'bench'/'suite.py'),
           '--only', 'nonsense', '--out', str(tmp_path/'b.md')]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode != 0 and 'Unknown sections' in r.stderr
    assert not (tmp_path/'b.md').exists()
