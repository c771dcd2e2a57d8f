"""allconv_fastai: the All Convolutional Net and DenseNet for CIFAR as fastai Learners.

Importing the package is cheap: its names are read from each module's `__all__` without importing it, and the first
name used imports every module (torch and fastai with them), in the order below. So `allconv-train --help` and
`import allconv_fastai` answer at once, while `from allconv_fastai import *` gives what it always gave."""
__version__ = "0.1.0"

import warnings
# fastai's import of `torch.jit.script` warns on torch >= 2.10; it is not ours to fix and says nothing to a user
warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated', category=FutureWarning)

# Every module whose public names are the package's, in import order (a later module's name wins, as with star imports)
_MODULES = ('core', 'machine', 'models.allcnn', 'models.densenet', 'models.registry', 'models.init', 'data.sources',
            'data.augment', 'data.loaders', 'callback.precision', 'callback.memory', 'callback.progress', 'callback.schedule',
            'callback.tta', 'learner', 'checkpoint', 'runs', 'plots', 'config', 'build', 'distributed', 'speed', 'train', 'tables', 'card',
            'interpret', 'pretrained', 'campaign')

# Names fastai's `from fastai.vision.all import *` also exports: importable from here by name, but left out of
# `from allconv_fastai import *`, so a star import after fastai's never replaces fastai's objects.
_FASTAI_NAMES = ('DenseNet', 'resize_images', 'ImageSet')

def _module_names(mod:str) -> list:
    "The `__all__` of submodule `mod`, read from its source without importing it."
    import ast, pathlib
    tree = ast.parse((pathlib.Path(__file__).parent/(mod.replace('.', '/') + '.py')).read_text(encoding='utf-8'))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == '__all__' for t in node.targets):
            return list(ast.literal_eval(node.value))
    return []

_where = {n: m for m in _MODULES for n in _module_names(m)}
__all__ = ['__version__'] + sorted(set(_where) - set(_FASTAI_NAMES))

def _load():
    "Import every module in `_MODULES` and bind its public names here."
    import importlib
    g = globals()
    for m in _MODULES:
        mod = importlib.import_module(f'.{m}', __name__)
        for n in mod.__all__: g[n] = getattr(mod, n)

def __getattr__(name:str):
    if name not in _where: raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _load()
    return globals()[name]

def __dir__(): return sorted(set(globals()) | set(_where))
