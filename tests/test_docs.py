"""The docs as a reader meets them: README.md in step with nbs/index.ipynb, and the static site (built by
`python docs/build.py`) opened page by page in headless Chromium: every page renders, every internal link and image
resolves, nothing is fetched from another host, and every public name of the package is documented on an API page
with its docstring."""
import importlib, importlib.util, inspect, json, os, pkgutil, re, shutil, subprocess, sys, threading, time
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location('docs_build', ROOT/'docs'/'build.py')
docs_build = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(docs_build)

CHROME_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                '--disable-background-networking', '--disable-component-update', '--disable-sync',
                '--disable-extensions', '--disable-default-apps', '--window-size=1280,900']

def test_readme_matches_index_notebook():
    "README.md is what `python docs/build.py --readme` makes from nbs/index.ipynb."
    assert (ROOT/'README.md').read_text() == docs_build.readme(), \
        "README.md is out of step with nbs/index.ipynb: run `python docs/build.py --readme`"

def test_readme_generator_keeps_code_and_text_outputs():
    nb = {'cells': [
        {'cell_type': 'markdown', 'source': '# t\n> s', 'metadata': {}},
        {'cell_type': 'code', 'source': '#| hide\nsecret()', 'outputs': [], 'metadata': {}},
        {'cell_type': 'code', 'source': 'print(1+1)', 'metadata': {},
         'outputs': [{'output_type': 'stream', 'name': 'stdout', 'text': '2\n'}]}]}
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = Path(d)/'index.ipynb'; p.write_text(json.dumps(nb))
        r = docs_build.readme(p)
    assert '# t\n\n> s' in r and '```python\nprint(1+1)\n```' in r and '```\n2\n```' in r and 'secret' not in r

def test_quarto_callouts_become_admonitions():
    md = docs_build.quarto_md('::: {.callout-warning}\n## Careful\nBody text\n:::\nafter')
    assert md.splitlines()[0] == '!!! warning "Careful"' and '    Body text' in md and md.rstrip().endswith('after')

def test_docs_warn_load_learner_unpickles():
    "The learner docs must tell users that fastai's load_learner runs pickled code (trusted files only)."
    nb = json.loads((ROOT/'nbs'/'12_runs.ipynb').read_text())
    md = ' '.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown')
    i = md.find('load_learner')
    assert i >= 0 and 'unpickles' in md[i:i+200] and 'trust' in md[i:i+200], md[i-200:i+200]
    assert 'weights_only=True' in md

# ---------------------------------------------------------------- the site in a browser

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The built site: $ALLCONV_DOCS_SITE if set (already built), else built now into a temporary folder."
    if os.environ.get('ALLCONV_DOCS_SITE'): return Path(os.environ['ALLCONV_DOCS_SITE']).resolve()
    out = tmp_path_factory.mktemp('site')
    # read-back cells as stored: tests/test_tutorials.py runs them again and fails when a stored output is stale
    r = subprocess.run([sys.executable, str(ROOT/'docs'/'build.py'), '--site', str(out), '--stored-readbacks'], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f'docs build failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}'
    return out

def _chrome():
    chrome = next((shutil.which(c) for c in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(c)), None)
    driver = shutil.which('chromedriver')
    if not (chrome and driver):
        pytest.skip('headless Chromium not installed (apt-get install -y chromium chromium-driver)')
    try: import selenium  # noqa: F401
    except ImportError: pytest.skip('selenium not installed (pip install selenium)')
    return chrome, driver

@pytest.fixture(scope='module')
def crawl(site, tmp_path_factory):
    "Open every page of the site once, in one browser session, and record what a reader would get."
    chrome, driver_path = _chrome()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    handler = partial(type('Quiet', (SimpleHTTPRequestHandler,), {'log_message': lambda *a: None}), directory=str(site))
    server = ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f'http://127.0.0.1:{server.server_address[1]}/'
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for f in CHROME_FLAGS + [f'--user-data-dir={tmp_path_factory.mktemp("chrome-profile")}']: opts.add_argument(f)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    drv = webdriver.Chrome(options=opts, service=Service(driver_path))
    drv.set_page_load_timeout(30)
    pages = {}
    try:
        for f in sorted(site.rglob('*.html')):
            rel = f.relative_to(site).as_posix()
            if rel == '404.html': continue
            drv.get(base + rel)
            for _ in range(50):  # images are decoded after load
                if drv.execute_script('return document.readyState=="complete" && Array.from(document.images).every(i=>i.complete)'): break
                time.sleep(0.1)
            info = drv.execute_script("""return {
                title: document.title,
                text: document.body ? document.body.innerText : '',
                article: (document.querySelector('article') || document.body || {innerText: ''}).innerText,
                ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
                links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
                imgs: Array.from(document.images).map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0})),
                resources: performance.getEntriesByType('resource').map(r => r.name),
                wide_code: Array.from(document.querySelectorAll('article pre, article pre > code'))
                    .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent.slice(0, 100)),
                wide_tables: Array.from(document.querySelectorAll('article table')).filter(t => {
                    const right = t.closest('article').getBoundingClientRect().right;
                    if (t.getBoundingClientRect().right <= right + 1) return false;
                    for (let e = t; e && e.tagName != 'ARTICLE'; e = e.parentElement)
                        if (['auto', 'scroll'].includes(getComputedStyle(e).overflowX)) return false;
                    return true;}).map(t => t.innerText.slice(0, 100))}""")
            info['console'] = [e['message'] for e in drv.get_log('browser') if e['level'] == 'SEVERE']
            pages[rel] = info
    finally:
        drv.quit(); server.shutdown(); server.server_close()
    return dict(base=base, site=site, pages=pages)

def test_every_page_renders(crawl):
    assert len(crawl['pages']) >= 2, f"only {list(crawl['pages'])}"
    bad = {p: (i['title'], len(i['article'].strip()), i['console'])
           for p,i in crawl['pages'].items() if len(i['article'].strip()) < 20 or i['console']}
    assert not bad, f'pages empty or with browser errors (title, text length, errors): {bad}'

def test_no_raw_object_reprs_on_any_page(crawl):
    "Defaults such as a sentinel object or a function show as text, not as `<object ... at 0x...>` (an HTML tag in a table)."
    site = crawl['site']
    bad = [(f.relative_to(site).as_posix(), m) for f in site.rglob('*.html')
           for m in re.findall(r'(?:<|&lt;)(?:object|function) [^>&]{0,80} at 0x[0-9a-f]+', f.read_text(errors='replace'))]
    assert not bad, bad[:10]

def test_long_lines_wrap_at_1280px(crawl):
    "At the browser's 1280 px, no code, signature or output block runs past its box (long lines wrap), and no table runs off the page unless it scrolls in its own box."
    code = {p: i['wide_code'] for p,i in crawl['pages'].items() if i['wide_code']}
    assert not code, f"code blocks wider than their box (they would be cut off or scroll): {code}"
    tables = {p: i['wide_tables'] for p,i in crawl['pages'].items() if i['wide_tables']}
    assert not tables, f"tables running off the page: {tables}"

def test_home_page_is_the_index_notebook(crawl):
    home = crawl['pages']['index.html']['article']
    nb = json.loads((ROOT/'nbs'/'index.ipynb').read_text())
    first = ''.join(nb['cells'][0]['source']).splitlines()[0].lstrip('# ').strip()
    assert first in home

def test_internal_links_resolve(crawl):
    base, site, pages = crawl['base'], crawl['site'], crawl['pages']
    bad = []
    for p,info in pages.items():
        for url in info['links']:
            if not url.startswith(base): continue
            u = urlsplit(url)
            rel = unquote(u.path[len(urlsplit(base).path):]) or 'index.html'
            if rel.endswith('/'): rel += 'index.html'
            if not (site/rel).is_file(): bad.append((p, url, 'no such file')); continue
            if u.fragment and rel in pages and unquote(u.fragment) not in pages[rel]['ids']:
                bad.append((p, url, 'no such anchor'))
    assert not bad, f'{len(bad)} broken internal links: {bad[:20]}'

def test_images_load(crawl):
    n = sum(len(i['imgs']) for i in crawl['pages'].values())
    bad = [(p, im['src']) for p,i in crawl['pages'].items() for im in i['imgs'] if not im['ok']]
    assert not bad, f'{len(bad)} of {n} images did not load: {bad[:20]}'

def test_nothing_fetched_from_other_hosts(crawl):
    host = urlsplit(crawl['base']).netloc
    bad = [(p, r) for p,i in crawl['pages'].items() for r in i['resources'] + [im['src'] for im in i['imgs']]
           if urlsplit(r).scheme in ('http', 'https') and urlsplit(r).netloc != host]
    assert not bad, f'pages fetch from other hosts: {bad[:20]}'
    assert not docs_build.external_refs(crawl['site'])

def public_api():
    "(module, name, object) for every name in the `__all__` of every module of the package."
    import allconv_fastai
    res = []
    for m in pkgutil.walk_packages(allconv_fastai.__path__, 'allconv_fastai.'):
        if any(part.startswith('_') for part in m.name.split('.')): continue
        mod = importlib.import_module(m.name)
        res += [(m.name, n, getattr(mod, n)) for n in getattr(mod, '__all__', [])]
    return res

def _norm(s): return re.sub(r'\s+', ' ', re.sub(r'[`*]', '', s)).strip()

def test_every_public_name_documented_on_an_api_page(crawl):
    _, _, api, _ = docs_build.notebooks()
    api_pages = {docs_build.page_name(p)[:-3] + '.html' for p in api}
    pages = {p: i for p,i in crawl['pages'].items() if p in api_pages}
    assert pages, f'no API pages among {list(crawl["pages"])}'
    texts = {p: _norm(i['article']) for p,i in pages.items()}
    missing = []
    for mod,name,obj in public_api():
        if inspect.isfunction(obj) or inspect.isclass(obj):
            doc = obj.__doc__
            if not doc or not doc.strip(): missing.append(f'{mod}.{name}: no docstring'); continue
            first = _norm(doc.strip().split('\n\n')[0])[:100]
            ok = [p for p,i in pages.items() if (name.lower() in i['ids'] or name in texts[p]) and first in texts[p]]
            if not ok: missing.append(f'{mod}.{name}: no API page shows it with its docstring "{first[:60]}"')
        elif not any(name in t for t in texts.values()):
            missing.append(f'{mod}.{name}: not on any API page')
    assert not missing, f'{len(missing)} public names not documented:\n' + '\n'.join(missing)

def test_figures_and_directives_become_page_content(tmp_path):
    "A committed PNG output becomes a file next to the page; `echo: false` hides code, library warnings are dropped."
    png = ('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==')
    nb = {'cells': [
        {'cell_type': 'raw', 'source': '---\ntitle: T\ndescription: D\n---', 'metadata': {}},
        {'cell_type': 'code', 'source': '#| echo: false\nplot()', 'metadata': {}, 'outputs': [
            {'output_type': 'display_data', 'data': {'image/png': png, 'text/plain': '<Figure>'}, 'metadata': {}},
            {'output_type': 'stream', 'name': 'stderr', 'text': 'x.py:3: FutureWarning: old\n  warnings.warn(\n'}]}]}
    md,title = docs_build.nb2md(nb, 'tutorials/plots.md', docs_build.Linker({}), tmp_path)
    assert title == 'T' and md.startswith('# T\n\nD') and 'plot()' not in md and 'Warning' not in md
    assert '![figure](plots_files/fig-1.png)' in md and (tmp_path/'tutorials/plots_files/fig-1.png').stat().st_size > 0

# ---------------------------------------------------------------- parameter tables (checked on the built HTML, no browser)

# Names whose parameters are the library's or are passed straight through, so they have no table of their own.
def _exempt(obj, params) -> str|None:
    "Why `obj` needs no parameter table of its own, or None when it needs one."
    if not params: return '*args/**kwargs only: a paper-named builder or a wrapper whose arguments its target documents'
    init = getattr(obj, '__init__', None) if inspect.isclass(obj) else None
    if init is not None and not (getattr(init, '__module__', '') or '').startswith('allconv_fastai'):
        return f"`__init__` inherited from {init.__module__}: the parameters are that library's (e.g. fastai's `Callback`)"
    return None

def _params(obj) -> list:
    "The parameters a caller names: not `self`, not `*args`/`**kwargs`."
    try: sig = inspect.signature(obj)
    except (TypeError, ValueError): return []
    return [p.name for p in sig.parameters.values()
            if p.name != 'self' and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

def api_callables() -> list:
    "(dotted name, heading id, object, parameters) for every public function and class (`__all__`) and every `@patch`ed public `Learner` method."
    from fastai.learner import Learner
    res, seen = [], set()
    for mod,name,obj in public_api():
        if inspect.isfunction(obj) or inspect.isclass(obj):
            res.append((f'{mod}.{name}', name.lower(), obj, _params(obj)))
    import allconv_fastai._modidx as mi
    for mod,syms in mi.d['syms'].items():
        for sym in syms:
            parts = sym.split('.')
            if parts[-2:-1] == ['Learner'] and not parts[-1].startswith('_') and parts[-1] not in seen:
                seen.add(parts[-1]); importlib.import_module(mod)
                fn = getattr(Learner, parts[-1])
                res.append((f'{mod}.Learner.{parts[-1]}', f'learner.{parts[-1]}', fn, _params(fn)))
    return res

class _Sections(HTMLParser):
    "Each heading's id -> the rows (first cell, last cell) of the first table under it, before the next heading."
    def __init__(self):
        super().__init__(); self.tables, self.cur, self.cell, self.row, self.in_table = {}, None, None, None, False
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if re.fullmatch(r'h[1-6]', tag): self.cur = a.get('id')
        elif tag == 'table' and self.cur is not None and self.cur not in self.tables: self.tables[self.cur] = []; self.in_table = True
        elif tag == 'tr' and self.in_table: self.row = []
        elif tag in ('td', 'th') and self.row is not None: self.cell = ''
    def handle_endtag(self, tag):
        if tag in ('td', 'th') and self.cell is not None: self.row.append(self.cell.strip()); self.cell = None
        elif tag == 'tr' and self.row is not None:
            if self.row and self.row[0]: self.tables[self.cur].append(self.row)
            self.row = None
        elif tag == 'table': self.in_table = False
    def handle_data(self, data):
        if self.cell is not None: self.cell += data

def param_tables(html:str) -> dict:
    "{heading id: {parameter: details}} for the parameter tables of one page."
    p = _Sections(); p.feed(html)
    return {h: {r[0]: r[-1] for r in rows if len(r) >= 2} for h,rows in p.tables.items()}

def missing_tables(pages:dict, callables) -> list:
    "Why each public callable with parameters lacks a complete table on the API pages `pages` ({page: html})."
    tables = {page: param_tables(html) for page,html in pages.items()}
    bad = []
    for name,hid,obj,params in callables:
        if _exempt(obj, params): continue
        found = [t[hid] for t in tables.values() if hid in t]
        if not found: bad.append(f'{name}: no parameter table under its heading (#{hid})'); continue
        best = max(found, key=lambda t: sum(bool(t.get(p)) for p in params))
        miss = [p for p in params if not best.get(p)]
        if miss: bad.append(f"{name}: no docment for {', '.join(miss)}")
    return bad

def _api_html(site) -> dict:
    _, _, api, _ = docs_build.notebooks()
    return {docs_build.page_name(p)[:-3] + '.html': (Path(site)/(docs_build.page_name(p)[:-3] + '.html')).read_text()
            for p in api if (Path(site)/(docs_build.page_name(p)[:-3] + '.html')).exists()}

def test_every_public_parameter_has_a_table_row(site):
    "Every public function, class (its `__init__`) and patched `Learner` method shows a parameter table on its API page, with a docment for every parameter."
    calls = api_callables()
    assert len(calls) > 100 and any(n.endswith('Learner.fit_step') for n,*_ in calls), 'the list of public callables looks wrong'
    bad = missing_tables(_api_html(site), calls)
    assert not bad, f'{len(bad)} public names lack a complete parameter table ' \
        '(add a trailing `# comment` after each parameter in the notebook):\n' + '\n'.join(bad)

def test_parameter_table_check_can_fail():
    "The check reports a name with no table, and a parameter with no row or an empty one."
    def f(a, b=1): "doc"
    page = ('<h3 id="f">f</h3><p>doc</p><table><thead><tr><th></th><th>Type</th><th>Default</th><th>Details</th></tr></thead>'
            '<tbody><tr><td>a</td><td></td><td></td><td>the a</td></tr>{}</tbody></table><h3 id="g">g</h3>')
    calls = [('m.f', 'f', f, ['a', 'b'])]
    assert missing_tables({'p.html': page.format('<tr><td>b</td><td>int</td><td>1</td><td>the b</td></tr>')}, calls) == []
    assert missing_tables({'p.html': page.format('<tr><td>b</td><td>int</td><td>1</td><td></td></tr>')}, calls) == ['m.f: no docment for b']
    assert missing_tables({'p.html': page.format('')}, calls) == ['m.f: no docment for b']
    assert 'no parameter table' in missing_tables({'p.html': '<h3 id="f">f</h3><p>doc</p><h3 id="g">g</h3>'}, calls)[0]

def test_stored_outputs_are_portable():
    "The notebooks' stored outputs (shown on the API pages) hold no machine's paths and no memory addresses."
    _, tuts, api, _ = docs_build.notebooks()
    bad = []
    for nb in tuts + api:
        for i,cell in enumerate(json.loads(nb.read_text())['cells']):
            for out in cell.get('outputs', []):
                if out.get('name') == 'stderr' and docs_build._only_warnings(''.join(out.get('text', ''))): continue  # not shown
                txt = json.dumps({k: v for k,v in out.items() if k != 'data'} | {'data': {k: v for k,v in out.get('data', {}).items()
                                                                                      if not k.startswith('image/')}})
                for m in re.findall(r'(?:/work/|/tmp/|/home/|/Users/|/root/)[^\s"\'\\]*|\bat 0x[0-9a-f]{6,}', txt):
                    bad.append(f'{nb.relative_to(ROOT)} cell {i}: {m}')
    assert not bad, 'stored outputs that depend on the machine (print a relative path, or a name instead of a repr):\n' + '\n'.join(bad[:20])
