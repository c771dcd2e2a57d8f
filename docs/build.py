"""Build the documentation site (without Quarto) and README.md from the notebooks in nbs/.

    python docs/build.py            # static HTML site in docs/_site (about two minutes; runs only the read-back cells)
    python docs/build.py --readme   # README.md from nbs/index.ipynb
    python docs/build.py --stored-readbacks   # the site with every output as stored (runs no notebook cell)

The site: nbdev's own processing (`nbdev.serve.proc_nbs`, what `nbdev-proc-nbs` runs, minus its Quarto install)
writes the processed notebooks to `_proc/` with a rendered `show_doc` for every exported name; each processed
notebook becomes one Markdown page (the committed outputs, read-back cells run again, figures saved as files; Quarto's `#|` options and
callouts translated), and mkdocs with the Material theme renders them offline: no fonts, scripts or styles from
other hosts. Navigation: Home (nbs/index.ipynb), the tutorials (nbs/tutorials/NN_*.ipynb) in order, then the API
pages (nbs/NN_*.ipynb) in notebook order. `nbdev-docs` still builds the Quarto site from the same notebooks where
Quarto is installed.
"""
from __future__ import annotations
import argparse, base64, inspect, json, os, posixpath, re, shutil, sys, time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT/'docs'
NBS = ROOT/'nbs'
SITE = DOCS/'_site'
STAGE = DOCS/'_build'
ASSET_EXTS = {'.png', '.jpg', '.jpeg', '.gif', '.svg', '.webp', '.pdf', '.csv', '.txt'}
SKIP_DIRS = {'runs', 'models', 'data'}  # what notebooks write while they run (gitignored), never docs
_ANSI = re.compile(r'\x1b\[[0-9;?]*[A-Za-z]')
_DIRECTIVE = re.compile(r'^\s*#\s*\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')

# ---------------------------------------------------------------- notebooks -> pages

def _src(x): return ''.join(x) if isinstance(x, list) else (x or '')

def notebooks(nbs:Path=NBS):
    "The site's notebooks in reading order: index, tutorials/NN_*, then NN_* (API), then any others."
    def num(p): m = re.match(r'(\d+)([a-z]?)_', p.name); return (int(m.group(1)) if m else 10**6, m.group(2) if m else '', p.name)
    def ok(p): return not any(part.startswith(('.', '_')) or part in SKIP_DIRS for part in p.relative_to(nbs).parts)
    allnbs = sorted(p for p in nbs.rglob('*.ipynb') if ok(p))
    index = [p for p in allnbs if p.relative_to(nbs).as_posix()=='index.ipynb']
    tuts = sorted([p for p in allnbs if p.parent==nbs/'tutorials' and re.match(r'\d+[a-z]?_', p.name)], key=num)
    api = sorted([p for p in allnbs if p.parent==nbs and re.match(r'\d+[a-z]?_', p.name)], key=num)
    rest = [p for p in allnbs if p not in index+tuts+api]
    return index, tuts, api, rest

def page_name(nb:Path, nbs:Path=NBS) -> str:
    "Path of `nb`'s page in the site, as nbdev names it (`00_core.ipynb` -> `core.md`, `index.ipynb` -> `index.md`)."
    rel = nb.relative_to(nbs)
    stem = re.sub(r'^\d+[a-z]?_', '', rel.stem) or rel.stem
    return (rel.parent/f'{stem}.md').as_posix()

def directives(src:str):
    "Split a code cell into its `#|` options (a dict) and the code without them."
    opts,lines,head = {},[],True
    for line in src.splitlines():
        m = _DIRECTIVE.match(line) if head else None
        if m: opts[m.group(1)] = m.group(2).strip().strip('"\'').lower() or 'true'; continue
        if head and not line.strip(): continue
        head = False; lines.append(line)
    return opts, '\n'.join(lines).strip('\n')

def _fence(text:str, lang:str='text', cls:str='') -> str:
    n = max([3] + [len(m) + 1 for m in re.findall(r'`{3,}', text)])
    attrs = f' {{ .{lang} .{cls} }}' if cls else lang
    return f"{'`'*n}{attrs}\n{text.rstrip()}\n{'`'*n}"

_CALLOUTS = dict(note='note', tip='tip', warning='warning', caution='danger', important='info')

def quarto_md(md:str) -> str:
    "Translate Quarto markup to mkdocs-material: callouts to admonitions; other `:::` fenced divs are unwrapped."
    out,stack,fence = [],[],None
    for line in md.splitlines():
        ind = '    '*sum(1 for s in stack if s)
        fm = re.match(r'^\s*(`{3,}|~{3,})', line)
        if fence:
            if fm and fm.group(1)[0]==fence[0] and len(fm.group(1))>=len(fence): fence = None
            out.append(ind+line if line else line); continue
        if fm: fence = fm.group(1); out.append(ind+line); continue
        m = re.match(r'^\s*(:{3,})\s*\{?([^}]*)\}?\s*$', line)
        if m and m.group(2).strip():
            c = re.search(r'\.?callout-(\w+)', m.group(2))
            if c:
                t = re.search(r'title\s*=\s*"([^"]*)"', m.group(2))
                mark = '???' if re.search(r'collapse\s*=\s*"?true', m.group(2)) else '!!!'
                kind = _CALLOUTS.get(c.group(1), 'note')
                out.append(ind + f'{mark} {kind}' + (f' "{t.group(1)}"' if t else '')); out.append('')
                stack.append([True, not t, len(out)-2])
            else: stack.append(None)
            continue
        if m and stack: stack.pop(); out.append(''); continue
        top = stack[-1] if stack else None
        if top and top[1] and line.strip():  # a callout's first heading is its title
            top[1] = False
            h = re.match(r'^#{1,6}\s+(.*)$', line.strip())
            if h: out[top[2]] += f' "{h.group(1)}"'; continue
        out.append(ind+line if line.strip() else '')
    return '\n'.join(out)

class Linker:
    "Rewrite links to notebooks, nbdev pages and this site's doc host into relative links between pages."
    def __init__(self, pages:dict, doc_url:str=''):
        self.pages = pages  # notebook path relative to nbs/ -> page path
        self.by_html = {v[:-3]+'.html': v for v in pages.values()}
        self.doc_url = doc_url.rstrip('/') + '/' if doc_url else ''

    def target(self, url:str, page:str) -> str|None:
        "The page (and anchor) that `url`, written on `page`, means; None when it is not a page of this site."
        u = urlsplit(url)
        if self.doc_url and url.startswith(self.doc_url): path = url[len(self.doc_url):].split('#')[0]
        elif u.scheme or u.netloc or not u.path: return None
        else: path = posixpath.normpath(posixpath.join(posixpath.dirname(page), u.path))
        path = path or 'index.html'
        dest = self.pages.get(path) or self.by_html.get(path) or self.by_html.get(path.removesuffix('.md')+'.html')
        if dest is None: return None
        rel = posixpath.relpath(dest, posixpath.dirname(page) or '.')
        return rel + (f'#{u.fragment}' if u.fragment else '')

    def __call__(self, md:str, page:str) -> str:
        def sub(m):
            t = self.target(m.group(2), page)
            return m.group(1) + (t if t is not None else m.group(2)) + m.group(3)
        return re.sub(r'(\]\()([^)\s]+)(\s*(?:"[^"]*")?\))', sub, md)

def _showdoc_md(md:str) -> str:
    "Give each `show_doc` heading the anchor nbdev's links use (`#name` in lower case)."
    return re.sub(r'^(#{2,6}) (\S+)[ \t]*$', lambda m: f'{m.group(1)} {m.group(2)} {{#{m.group(2).lower()}}}', md, flags=re.M)

_WARN_LINE = re.compile(r'^(\S.*:\d+: \w*Warning: .*|\s+warnings\.warn\(.*|\s*)$')
def _only_warnings(txt:str) -> bool:
    "Is this stderr text nothing but Python warnings from libraries (`file:line: XWarning: ...`)?"
    return all(_WARN_LINE.match(l) for l in txt.splitlines())

def nb2md(nb:dict, page:str, linker:Linker, stage:Path) -> tuple[str,str]:
    "Markdown for one processed notebook and its title; figures from the outputs are written next to the page."
    parts,title,n_fig = [],None,0
    files = Path(page).stem + '_files'
    for cell in nb['cells']:
        src,kind = _src(cell.get('source')), cell['cell_type']
        if kind=='raw':
            fm = re.match(r'^---\s*\n(.*?)\n---\s*$', src.strip(), re.S)
            if fm:
                meta = yaml.safe_load(fm.group(1)) or {}
                title = str(meta.get('title') or Path(page).stem)
                parts.append(f'# {title}')
                if meta.get('description'): parts.append(f"{meta['description']}\n{{: .nb-description }}")
            continue
        if kind=='markdown':
            if src.strip().startswith('<!-- WARNING: THIS FILE WAS AUTOGENERATED'): continue
            parts.append(linker(quarto_md(src), page)); continue
        opts,code = directives(src)
        if opts.get('include')=='false': continue
        asis = opts.get('output')=='asis'
        body = []
        if code.strip() and opts.get('echo')!='false': body.append(_fence(code, 'python'))
        for out in ([] if opts.get('output')=='false' else cell.get('outputs', [])):
            ot = out.get('output_type')
            if ot=='stream':
                txt = _ANSI.sub('', _src(out.get('text')))
                if out.get('name')=='stderr' and (asis or _only_warnings(txt)): continue
                if txt.strip(): body.append(_fence(txt, cls='nb-output' if out.get('name')!='stderr' else 'nb-stderr'))
            elif ot=='error':
                body.append(_fence(_ANSI.sub('', '\n'.join(out.get('traceback', []))), cls='nb-error'))
            elif ot in ('execute_result', 'display_data'):
                data = out.get('data', {})
                if 'text/markdown' in data and (asis or 'text/html' not in data):
                    md = _src(data['text/markdown'])
                    body.append(linker(quarto_md(_showdoc_md(md) if asis else md), page))
                elif any(k in data for k in ('image/png', 'image/jpeg', 'image/svg+xml')):
                    mime = next(k for k in ('image/svg+xml', 'image/png', 'image/jpeg') if k in data)
                    n_fig += 1
                    name = f"{files}/fig-{n_fig}.{ {'image/png':'png','image/jpeg':'jpg','image/svg+xml':'svg'}[mime] }"
                    dest = stage/posixpath.dirname(page)/name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    if mime=='image/svg+xml': dest.write_text(_src(data[mime]))
                    else: dest.write_bytes(base64.b64decode(_src(data[mime])))
                    cap = opts.get('fig-cap', '') or opts.get('fig-alt', '') or 'figure'
                    body.append(f'![{cap}]({name}){{ .nb-figure }}')
                elif 'text/html' in data:
                    html = _src(data['text/html']).strip()
                    html = re.sub(r'<script\b.*?</script>', '', html, flags=re.S|re.I)  # widget/CDN loaders
                    body.append(f'<div class="nb-output nb-html" markdown="0">\n{html}\n</div>')
                elif 'text/plain' in data:
                    body.append(_fence(_ANSI.sub('', _src(data['text/plain'])), cls='nb-output'))
        if not body: continue
        if opts.get('code-fold') in ('true', 'show') and len(body)>1 and opts.get('echo')!='false':
            mark = '???+' if opts.get('code-fold')=='show' else '???'
            body[0] = f'{mark} example "Code"\n\n' + '\n'.join('    '+l if l else l for l in body[0].splitlines())
        parts.extend(body)
    title = title or Path(page).stem
    return '\n\n'.join(parts).rstrip() + '\n', title

# ---------------------------------------------------------------- nbdev processing

def _readable_defaults(md:str) -> str:
    "Defaults whose repr is `<...>` (a function, a sentinel object) as text: raw, they would be HTML tags in a table."
    md = re.sub(r'<function ([\w.]+) at 0x[0-9a-f]+>', r'\1', md)
    md = re.sub(r'<object object at 0x[0-9a-f]+>', '(not set)', md)
    return re.sub(r"<class '([\w.]+)'>", r'\1', md)

def _exported(sym):
    "The package's own copy of a class a notebook defines (its exported module, found in the package's `_modidx`), or None."
    import importlib
    from nbdev.config import get_config
    try: syms = importlib.import_module(f"{get_config().lib_path.name}._modidx").d['syms']
    except Exception: return None
    name = getattr(sym, '__qualname__', '')
    mod = next((m for m,d in syms.items() if f'{m}.{name}' in d), None)
    try: return getattr(importlib.import_module(mod), name) if mod else None
    except Exception: return None

def _table_renderer():
    "Make `show_doc` add a docments table (name, type, default, details) under the signature, like nbdev 2 did."
    import nbdev.showdoc as sd
    from fastcore.docments import DocmentTbl, DocmentText
    if getattr(sd.BasicMarkdownRenderer, '_allconv_tables', False): return
    orig = sd.BasicMarkdownRenderer._repr_markdown_
    def _repr_markdown_(self):
        md = orig(self)
        sym = self.sym
        try:
            tbl = DocmentTbl(sym)
            if not tbl.has_docment and inspect.isclass(sym) and (pkg := _exported(sym)) is not None:
                sym,tbl = pkg,DocmentTbl(pkg)  # a dataclass defined in a notebook cell: `inspect` reads no source there
        except Exception: return _readable_defaults(md)
        if not tbl.has_docment: return _readable_defaults(md)
        try:  # the signature without the trailing comments, which the table now shows
            dt = DocmentText(sym, maxline=self.maxline, docstring=False)
            for v in dt.dm.values(): v['docment'] = None
            md = md.replace(f'```python\n{self.dm}\n```', f'```python\n{dt}\n```', 1)
        except Exception: pass
        return _readable_defaults(md + '\n\n' + str(tbl))
    sd.BasicMarkdownRenderer._repr_markdown_ = _repr_markdown_
    sd.BasicMarkdownRenderer._allconv_tables = True

def _run_only_doc_cells():
    """nbdev runs every cell that imports something to render `show_doc`, even a cell that also trains a model; run
    only exported cells, pure import cells and `show_doc` cells, so building the docs never runs a notebook's work."""
    import ast, nbdev.processors as P
    if getattr(P, '_allconv_only_doc_cells', False): return
    orig = P._do_eval
    def _do_eval(cell):
        if cell.cell_type!='code' or not cell.source: return orig(cell)
        trees = cell.parsed_()
        if not trees or cell.directives_.keys() & {'export','exports','exporti','exec_doc'} or P._show_docs(trees): return orig(cell)
        if all(isinstance(t, (ast.Import, ast.ImportFrom)) for t in trees): return orig(cell)
        if P._ast_contains(trees, (ast.Import, ast.ImportFrom)):
            print(f'docs: not running a cell that mixes imports with other code (put imports in a cell of their own):\n'
                  f'  {next(l for l in cell.source.splitlines() if not l.startswith("#|"))[:100]}')
    P._do_eval,P._allconv_only_doc_cells = _do_eval,True

def _read_config_once():
    """nbdev reads and parses pyproject.toml again for every cell it processes (about 2,000 times a build): parse
    each version of the file once (keyed by path, size and modification time) and hand out copies."""
    import copy, nbdev.config as C
    if getattr(C, '_allconv_config_cache', None) is not None: return
    orig,C._allconv_config_cache = C._load_toml,{}
    def _load_toml(p):
        st = Path(p).stat(); k = (str(Path(p).resolve()), st.st_size, st.st_mtime_ns)
        if k not in C._allconv_config_cache: C._allconv_config_cache[k] = orig(p)
        return copy.deepcopy(C._allconv_config_cache[k])
    C._load_toml = _load_toml

def process(force:bool=True) -> Path:
    "Run nbdev's docs processing of nbs/ into _proc/ in this process (no Quarto needed), returning _proc."
    os.chdir(ROOT)
    os.environ.setdefault('MPLBACKEND', 'Agg')
    _table_renderer(); _run_only_doc_cells(); _read_config_once()
    from nbdev.serve import proc_nbs
    return Path(proc_nbs(n_workers=0, force=force))

# ---------------------------------------------------------------- site

class _Refs(HTMLParser):
    "Collect the URLs a page makes the browser fetch (scripts, styles, images, frames)."
    def __init__(self): super().__init__(); self.urls = []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ('script', 'img', 'iframe', 'source', 'video', 'audio', 'embed') and a.get('src'): self.urls.append(a['src'])
        if tag=='link' and a.get('href') and (a.get('rel') or '').lower() not in ('canonical', 'alternate'): self.urls.append(a['href'])
        if tag=='object' and a.get('data'): self.urls.append(a['data'])

def external_refs(site:Path) -> list[tuple[str,str]]:
    "(page, url) for every resource of the built site that would be fetched from another host."
    res = []
    for f in sorted(site.rglob('*.html')):
        p = _Refs(); p.feed(f.read_text(errors='replace'))
        res += [(f.relative_to(site).as_posix(), u) for u in p.urls if re.match(r'^(https?:)?//', u)]
    for f in sorted(site.rglob('*.css')):
        res += [(f.relative_to(site).as_posix(), u) for u in re.findall(r'url\(\s*["\']?((?:https?:)?//[^)"\']+)', f.read_text(errors='replace'))]
    return res

def _imports_only(src:str) -> bool:
    import ast
    try: tree = ast.parse(directives(src)[1])
    except SyntaxError: return False
    return bool(tree.body) and all(isinstance(t, (ast.Import, ast.ImportFrom)) for t in tree.body)

def readback_cells(nb:dict) -> tuple:
    """A notebook's read-back cells (`#| readback`: they print results read from the repository's files; `#| readback:
    live` where those files still grow), and the cells to run for them: the first code cell, its import cells, them."""
    code = [c for c in nb['cells'] if c['cell_type']=='code']
    back = [c for c in code if 'readback' in directives(_src(c.get('source')))[0]]
    return back, ([code[0]] + [c for c in code[1:] if c in back or _imports_only(_src(c.get('source')))]) if back else []

def run_readbacks(nb_path:Path) -> dict:
    "Run `nb_path`'s read-back cells again, in its folder: {cell id: outputs as they are now} (a campaign's newly filed runs appear)."
    from execnb.shell import CaptureShell
    from fastcore.nbio import dict2nb
    nb = json.loads(Path(nb_path).read_text())
    back,todo = readback_cells(nb)
    if not back: return {}
    cwd = os.getcwd(); os.chdir(Path(nb_path).parent)
    try:
        sh,run = CaptureShell(path=Path(nb_path).parent, mpl_format='png'),dict2nb({'cells': json.loads(json.dumps(todo)), 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5})
        for c in run.cells:
            sh.cell(c)
            if sh.exc: raise RuntimeError(f"{nb_path}: a read-back cell failed:\n{c.source}\n{sh.exc!r}")
    finally: os.chdir(cwd)
    ids = {c.get('id') for c in back}
    return {c.id: json.loads(json.dumps(c.outputs)) for c in run.cells if c.get('id') in ids}

def stage_pages(proc:Path, stage:Path=STAGE, nbs:Path=NBS, readbacks:bool=True) -> list:
    "Write the Markdown pages and assets into `stage` (`readbacks`: with the read-back cells run again); return mkdocs' nav."
    from nbdev.config import get_config
    cfg = get_config()
    shutil.rmtree(stage, ignore_errors=True); stage.mkdir(parents=True)
    index,tuts,api,rest = notebooks(nbs)
    pages = {p.relative_to(nbs).as_posix(): page_name(p, nbs) for p in index+tuts+api+rest}
    linker = Linker(pages, f"{cfg.get('doc_host','')}{cfg.get('doc_baseurl','')}" if cfg.get('doc_host') else '')
    titles = {}
    for rel,page in pages.items():
        pnb = proc/rel
        if not pnb.exists(): raise FileNotFoundError(f'{pnb} missing: nbdev processing failed for nbs/{rel}')
        pj,fresh = json.loads(pnb.read_text()),run_readbacks(nbs/rel) if readbacks else {}   # read-backs as the results are now
        for c in pj['cells']:
            if c.get('id') in fresh: c['outputs'] = fresh[c['id']]
        md,titles[rel] = nb2md(pj, page, linker, stage)
        (stage/page).parent.mkdir(parents=True, exist_ok=True)
        (stage/page).write_text(md)
    _fix_method_anchors(stage, pages.values())
    for f in nbs.rglob('*'):  # images and files the notebooks' Markdown refers to
        rel = f.relative_to(nbs)
        if f.is_file() and f.suffix.lower() in ASSET_EXTS and not any(
                s.startswith(('.', '_')) or s in SKIP_DIRS for s in rel.parts[:-1]):
            (stage/rel).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(f, stage/rel)
    for f in (DOCS/'assets').glob('*'): shutil.copy2(f, stage/f.name)
    entry = lambda ps: [{titles[p.relative_to(nbs).as_posix()]: pages[p.relative_to(nbs).as_posix()]} for p in ps]
    nav = [{'Home': pages['index.ipynb']}] if index else []
    if tuts: nav.append({'Tutorials': entry(tuts)})
    if api: nav.append({'API': entry(api)})
    if rest: nav.append({'More': entry(rest)})
    return nav

def _fix_method_anchors(stage:Path, pages):
    "nbdev links `Class.method` to `#class.method`; where a method has no entry of its own, link to its class."
    ids = {p: set(re.findall(r'\{#([^}\s]+)\}', (stage/p).read_text())) for p in pages}
    for p in pages:
        def sub(m):
            dest = posixpath.normpath(posixpath.join(posixpath.dirname(p), m.group(1))) if m.group(1) else p
            frag = m.group(2)
            if dest in ids and frag not in ids[dest] and '.' in frag and frag.rsplit('.', 1)[0] in ids[dest]:
                frag = frag.rsplit('.', 1)[0]
            return f'({m.group(1)}#{frag})'
        f = stage/p
        f.write_text(re.sub(r'\(([^()\s#]*\.md|)#([\w.-]+)\)', sub, f.read_text()))

def build(site:Path=SITE, strict:bool=True, force:bool=True, quiet:bool=False, readbacks:bool=True) -> dict:
    "Build the static site into `site` from the notebooks' committed outputs (read-back cells run again unless not `readbacks`); return page count and timings."
    t0 = time.time()
    proc = process(force=force)
    t1 = time.time()
    nav = stage_pages(proc, readbacks=readbacks)
    from mkdocs.commands.build import build as mk_build
    from mkdocs.config import load_config
    import logging
    logging.getLogger('mkdocs').setLevel(logging.WARNING if quiet else logging.INFO)
    if not logging.getLogger().handlers: logging.basicConfig(format='%(levelname)s %(message)s')
    cfg = load_config(config_file=str(DOCS/'mkdocs.yml'), docs_dir=str(STAGE), site_dir=str(Path(site).absolute()),
                      nav=nav)
    counter = _WarningCounter(); logging.getLogger('mkdocs').addHandler(counter)
    try: mk_build(cfg)
    finally: logging.getLogger('mkdocs').removeHandler(counter)
    if strict and counter.count: raise SystemExit(f'docs build failed: mkdocs reported {counter.count} warning(s) (above), '
                                                  'e.g. a broken link; fix the notebook, or build with --no-strict')
    ext = external_refs(Path(site))
    if ext: raise SystemExit('the site would fetch from other hosts:\n' + '\n'.join(f'  {p}: {u}' for p,u in ext))
    n = len([p for p in Path(site).rglob('*.html') if p.name!='404.html'])
    return dict(pages=n, proc_s=round(t1-t0, 1), total_s=round(time.time()-t0, 1), site=str(site))

class _WarningCounter(__import__('logging').Handler):
    def __init__(self): super().__init__(level=__import__('logging').WARNING); self.count = 0
    def emit(self, record): self.count += 1

# ---------------------------------------------------------------- README

README_NOTE = '<!-- Generated from nbs/index.ipynb by `python docs/build.py --readme`: edit the notebook, not this file. -->'

def readme(nb_path:Path=NBS/'index.ipynb') -> str:
    "README.md text from the index notebook: its Markdown, its visible code and the code's text outputs."
    nb = json.loads(Path(nb_path).read_text())
    parts = [README_NOTE]
    for cell in nb['cells']:
        src = _src(cell.get('source'))
        if cell['cell_type']=='markdown':
            if re.match(r'^\s*#\|\s*hide\b', src): continue
            parts.append(re.sub(r'^(# .*)\n(?=>)', r'\1\n\n', src.strip(), count=1)); continue
        if cell['cell_type']!='code': continue
        opts,code = directives(src)
        if 'hide' in opts or opts.get('include')=='false': continue
        if code.strip() and opts.get('echo')!='false': parts.append(_fence(code, 'python'))
        if opts.get('output')=='false': continue
        for out in cell.get('outputs', []):
            if out.get('output_type')=='stream' and out.get('name')=='stdout': txt = _src(out.get('text'))
            elif out.get('output_type')=='execute_result' and not any(k.startswith('image/') for k in out.get('data', {})):
                txt = _src(out.get('data', {}).get('text/plain'))  # an image's text/plain is only its repr: dropped
            else: continue
            if txt.strip(): parts.append(_fence(_ANSI.sub('', txt), ''))
    return '\n\n'.join(p.rstrip() for p in parts if p.strip()) + '\n'

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--readme', action='store_true', help='write README.md from nbs/index.ipynb (and build nothing else)')
    ap.add_argument('--site', default=str(SITE), help='output folder of the site (default: docs/_site)')
    ap.add_argument('--no-strict', action='store_true', help='keep going on broken links and other mkdocs warnings')
    ap.add_argument('--stored-readbacks', action='store_true', help="show read-back cells' outputs as stored, without running them again")
    ap.add_argument('--readbacks', nargs='+', metavar='NB', help="store in these notebooks their read-back cells' outputs as they are now (and build nothing)")
    a = ap.parse_args(argv)
    if a.readbacks:
        for p in map(Path, a.readbacks):
            fresh,nb = run_readbacks(p),json.loads(p.read_text())
            for c in nb['cells']:
                if c.get('id') in fresh: c['outputs'] = fresh[c['id']]
            p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
            print(f'{p}: stored the outputs of {len(fresh)} read-back cells')
        return
    if a.readme:
        (ROOT/'README.md').write_text(readme())
        return print(f'wrote {ROOT/"README.md"}')
    r = build(Path(a.site), strict=not a.no_strict, readbacks=not a.stored_readbacks)
    print(f"built {r['pages']} pages into {r['site']} in {r['total_s']} s (nbdev processing {r['proc_s']} s)")

if __name__ == '__main__': main()
