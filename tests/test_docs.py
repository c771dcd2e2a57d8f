"""The docs as a reader meets them: README.md in step with nbs/index.ipynb, and the static site (built by
`python docs/build.py`) opened page by page in headless Chromium: every page renders, every internal link and image
resolves, nothing is fetched from another host, and every public name of the package is documented on an API page
with its docstring."""
import importlib, importlib.util, inspect, json, os, pkgutil, re, shutil, subprocess, sys, threading, time
from functools import partial
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

# ---------------------------------------------------------------- the site in a browser

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The built site: $ALLCONV_DOCS_SITE if set (already built), else built now into a temporary folder."
    if os.environ.get('ALLCONV_DOCS_SITE'): return Path(os.environ['ALLCONV_DOCS_SITE']).resolve()
    out = tmp_path_factory.mktemp('site')
    r = subprocess.run([sys.executable, str(ROOT/'docs'/'build.py'), '--site', str(out)], cwd=ROOT,
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
                resources: performance.getEntriesByType('resource').map(r => r.name)}""")
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
