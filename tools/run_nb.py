"""Execute a notebook in place (skipping `#| eval: false` cells), storing its real outputs for the docs.

    .venv/bin/python tools/run_nb.py nbs/tutorials/01_quickstart.ipynb && .venv/bin/nbdev-clean
"""
import re, sys, os, time
from pathlib import Path
from fastcore.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
os.environ.setdefault('MPLBACKEND', 'module://matplotlib_inline.backend_inline')
src = Path(sys.argv[1]).resolve()
nb = read_nb(src)
def skip(cell):
    if cell.cell_type != 'code': return True
    return bool(re.search(r'^\s*#\s*\|\s*eval\s*:\s*false', cell.source, re.M))
for c in nb.cells:
    if c.cell_type=='code' and skip(c): c.outputs = []; c.execution_count = None
os.chdir(src.parent)
import fastprogress.fastprogress as _fp
_fp.NO_BAR = True  # progress bars are transient; keep the stored outputs to the results tables
sh = CaptureShell(path=src.parent, mpl_format='png')
sh._fname = str(src)
t = time.time()
sh.run_all(nb, exc_stop=True, preproc=skip)
for c in nb.cells:  # fastprogress probes the terminal with '█\r', which a terminal overwrites: drop it as a terminal would
    for o in c.get('outputs', []):
        if o.get('output_type')=='stream':
            txt = ''.join(o['text']) if isinstance(o['text'], list) else o['text']
            o['text'] = txt.replace('█\r', '')
write_nb(nb, src)
print(f"executed {src.name} in {time.time()-t:.1f} s")
