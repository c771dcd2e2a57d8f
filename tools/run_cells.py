"""Execute some cells of a notebook in place (the first code cell, with its imports, then every cell whose source
contains one of the given markers, in order), storing their real outputs for the docs; the other cells are untouched.

    .venv/bin/python tools/run_cells.py nbs/tutorials/03_table3.ipynb "table3-c-row-5k" && .venv/bin/nbdev-clean

With `--all`, every code cell runs in order, as `nbdev-test` runs them (cells flagged `slow`, `cuda` or `notest`, or
`eval: false`, are skipped), so each marked cell sees everything above it; only the marked cells' outputs are stored,
written into the notebook as it is on disk when the run ends (a cell whose source changed meanwhile is left alone):

    .venv/bin/python tools/run_cells.py --all nbs/03_models.registry.ipynb "pd.DataFrame([dict(name=a.name" && .venv/bin/nbdev-clean

With `--all` and no marker, every cell's outputs are stored (the whole notebook run again for the docs):

    .venv/bin/python tools/run_cells.py --all nbs/tutorials/01_quickstart.ipynb && .venv/bin/nbdev-clean
"""
import json, os, re, sys, time
from pathlib import Path
from fastcore.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
os.environ.setdefault('MPLBACKEND', 'module://matplotlib_inline.backend_inline')
args = sys.argv[1:]
run_all = '--all' in args
if run_all: args.remove('--all')
src,markers = Path(args[0]).resolve(),args[1:]
nb = read_nb(src)
code = [c for c in nb.cells if c.cell_type=='code']
marked = (lambda c: any(m in c.source for m in markers)) if markers or not run_all else (lambda c: True)

def skipped(c) -> bool:
    "Does `nbdev-test` skip this cell (a test flag of the project, or `eval: false`)?"
    opts = [l[2:].strip() for l in c.source.splitlines() if l.startswith('#|')]
    return any(re.fullmatch(r'(slow|cuda|notest)(\s.*)?', o) or re.fullmatch(r'eval\s*:\s*false', o) for o in opts)

todo = [c for c in code if not skipped(c)] if run_all else [code[0]] + [c for c in code[1:] if marked(c)]
os.chdir(src.parent)
import fastprogress.fastprogress as _fp
_fp.NO_BAR = True  # progress bars are transient: keep them out of the stored outputs
sh = CaptureShell(path=src.parent, mpl_format='png')
t = time.time()
for c in todo:
    sh.cell(c)
    if sh.exc: raise SystemExit(f"cell failed:\n{c.source}\n{sh.exc}")
for c in todo:  # fastprogress probes the terminal with '█\r', which a terminal overwrites: drop it as a terminal would
    for o in c.get('outputs', []):
        if o.get('output_type')=='stream':
            o['text'] = (''.join(o['text']) if isinstance(o['text'], list) else o['text']).replace('█\r', '')
if run_all:   # store the marked cells' outputs in the notebook as it is now
    done = {c.id: c for c in todo if marked(c)}
    d = json.loads(src.read_text())
    n = 0
    for cell in d['cells']:
        c = done.get(cell.get('id'))
        if c is not None and ''.join(cell['source']) == c.source:
            cell['outputs'] = [dict(o) for o in c.outputs]; n += 1
    src.write_text(json.dumps(d, indent=1, ensure_ascii=False) + '\n')
    print(f"executed {len(todo)} cells of {src.name} in {time.time()-t:.1f} s; stored the outputs of {n} marked cells")
else:
    write_nb(nb, src)
    print(f"executed {len(todo)} cells of {src.name} in {time.time()-t:.1f} s")
