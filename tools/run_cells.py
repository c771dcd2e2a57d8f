"""Execute some cells of a notebook in place (the first code cell, with its imports, then every cell whose source
contains one of the given markers, in order), storing their real outputs for the docs; the other cells are untouched.

    .venv/bin/python tools/run_cells.py nbs/tutorials/03_table3.ipynb "table3-c-row-5k" && .venv/bin/nbdev-clean
"""
import os, sys, time
from pathlib import Path
from fastcore.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
os.environ.setdefault('MPLBACKEND', 'module://matplotlib_inline.backend_inline')
src,markers = Path(sys.argv[1]).resolve(),sys.argv[2:]
nb = read_nb(src)
code = [c for c in nb.cells if c.cell_type=='code']
todo = [code[0]] + [c for c in code[1:] if any(m in c.source for m in markers)]
os.chdir(src.parent)
import fastprogress.fastprogress as _fp
_fp.NO_BAR = True  # progress bars are transient: keep them out of the stored outputs
sh = CaptureShell(path=src.parent, mpl_format='png')
t = time.time()
for c in todo:
    sh.cell(c)
    if sh.exc: raise SystemExit(f"cell failed:\n{c.source}\n{sh.exc}")
write_nb(nb, src)
print(f"executed {len(todo)} cells of {src.name} in {time.time()-t:.1f} s")
