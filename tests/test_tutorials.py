"""The tutorials tell the truth about their numbers: a cell that reads results back (`#| readback`) prints, run again,
what is stored beneath it (`#| readback: live` cells, which read a campaign still filing runs, must run and print no
NaN), and every decimal figure quoted in a tutorial's prose is found in that notebook's own outputs, in a results
file of the repository, in the shipped model card, among the papers' figures the package's registry records, or among the settings its recipes
resolve to."""
import json, re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = [ROOT/'nbs'/'index.ipynb'] + sorted((ROOT/'nbs'/'tutorials').glob('[0-9]*.ipynb'))   # the index and the course

def _src(x): return ''.join(x) if isinstance(x, list) else (x or '')

def _texts(outputs) -> list:
    "The text a reader sees in `outputs`: streams, Markdown, plain text (figures left out)."
    res = []
    for o in outputs:
        if o.get('output_type') == 'stream': res.append(_src(o.get('text')))
        elif o.get('output_type') in ('execute_result', 'display_data'):
            d = o.get('data', {})
            t = d.get('text/markdown') or (None if any(k.startswith('image/') for k in d) else d.get('text/plain'))
            if t is not None: res.append(_src(t))
    return res

def _docs_build():
    import importlib.util
    spec = importlib.util.spec_from_file_location('docs_build', ROOT/'docs'/'build.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

docs_build = _docs_build()   # the docs build re-runs the same read-back cells (and reads `#|` options) as this file does

@pytest.mark.parametrize('path', [p for p in TUTORIALS if docs_build.readback_cells(json.loads(p.read_text()))[0]], ids=lambda p: p.name)
def test_readback_cells_print_what_is_stored(path, monkeypatch):
    "Run again (after the notebook's imports), each read-back cell prints the outputs stored with it: none is stale."
    monkeypatch.setenv('IN_TEST', '1'); monkeypatch.setenv('MPLBACKEND', 'Agg')
    nb = json.loads(path.read_text())
    back,_ = docs_build.readback_cells(nb)
    fresh = docs_build.run_readbacks(path)
    for c in back:
        src,old,new = _src(c['source']),_texts(c.get('outputs', [])),_texts(fresh[c['id']])
        assert not any('NaN' in t for t in new), f"{path.name}: a read-back cell prints NaN:\n{src}"
        if docs_build.directives(src)[0]['readback'] != 'live':
            assert new == old, f"{path.name}: stored outputs are stale; run the notebook again.\n{src}\nstored: {old}\nnow: {new}"

def _known_text() -> str:
    "Where a figure in prose may come from: results files, the shipped card, the registry's paper figures."
    parts = [p.read_text(errors='replace') for p in (ROOT/'bench'/'results').rglob('*') if p.suffix in ('.json', '.csv', '.md', '.txt')]
    parts += [p.read_text() for p in (ROOT/'allconv_fastai'/'weights').glob('*.json')]
    from allconv_fastai.models.registry import arch_info, arch_names
    for n in arch_names():
        a = arch_info(n)
        parts += [str(v) for v in (a.paper_error or {}).values()] + [str(a.paper_params)]
    from allconv_fastai.config import RunConfig   # the settings each recipe resolves to, which prose may quote
    for arch in ('all-cnn-c', 'densenet-bc100-k12'):
        for recipe in ('fast', 'paper'): parts.append(json.dumps(RunConfig(arch=arch, recipe=recipe, dropout=True).to_dict()))
    return '\n'.join(parts)

# Figures quoted from other work (not results of this repository), each with where it comes from.
CITED = {'17.89': 'a public PyTorch reproduction of All-CNN-C (test error %)',
         '19.13': 'the same reproduction with a 5% validation split held out (test error %)',
         '90.88': 'a Keras reproduction of All-CNN-C (test accuracy %)', '9.12': 'a Keras reproduction with LSUV init (test error %)',
         '4.76': 'public PyTorch DenseNet-BC-100-12 reproductions (C10+ test error %)', '4.77': 'the same',
         '5.35': 'a public DenseNet-40-12 reproduction (C10+ test error %)'}

def _prose_figures(md:str) -> list:
    "The decimal figures of a Markdown cell's prose: links, code and arXiv numbers left out."
    md = re.sub(r'```.*?```', '', md, flags=re.S)
    md = re.sub(r'`[^`]*`', '', md)
    md = re.sub(r'\]\([^)]*\)', ']', md)
    md = re.sub(r'(>=|<=|==|Python)\s*\d+\.\d+', '', md)   # versions
    md = re.sub(r'(arXiv:?|[Ss]ections?|[Ff]igures?|[Tt]ables?)\s*[\d.]+(\s*(and|,|or)\s*[\d.]+)*', '', md)
    return re.findall(r'(?<![\w.])\d+\.\d+(?![\d.])', md)

@pytest.mark.parametrize('path', TUTORIALS, ids=lambda p: p.name)
def test_prose_figures_come_from_outputs_or_results(path):
    nb = json.loads(path.read_text())
    known = _known_text() + '\n'.join(t for c in nb['cells'] for t in _texts(c.get('outputs', [])))
    found = lambda f: re.search(r'(?<![\d.])' + re.escape(f) + r'(?!\d)', known)
    missing = [f for c in nb['cells'] if c['cell_type'] == 'markdown' for f in _prose_figures(_src(c['source']))
               if f not in CITED and not found(f)]
    assert not missing, f"{path.name}: figures in prose found in no output, results file, card or registry: {missing}"
