__version__ = "0.1.0"

import warnings
# fastai's import of `torch.jit.script` warns on torch >= 2.10; it is not ours to fix and says nothing to a user
warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated', category=FutureWarning)

from .core import *
from .models.allcnn import *
from .models.densenet import *
from .models.registry import *
from .models.init import *
from .data.sources import *
from .data.augment import *
from .data.loaders import *
from .callback.precision import *
from .callback.schedule import *
from .callback.tta import *
from .learner import *
from .runs import *
from .config import *
from .distributed import *
from .experiments import *
from .interpret import *
from .pretrained import *
from .campaign import *
from .report import *

from .core import __all__ as _a0
from .models.allcnn import __all__ as _a1
from .models.densenet import __all__ as _a2
from .models.registry import __all__ as _a3
from .models.init import __all__ as _a4
from .data.sources import __all__ as _a5
from .data.augment import __all__ as _a6
from .data.loaders import __all__ as _a7
from .callback.precision import __all__ as _a8
from .learner import __all__ as _a9
from .runs import __all__ as _a10
from .config import __all__ as _a11
from .distributed import __all__ as _a12
from .experiments import __all__ as _a13
from .interpret import __all__ as _a14
from .callback.schedule import __all__ as _a15
from .callback.tta import __all__ as _a16
from .pretrained import __all__ as _a17
from .campaign import __all__ as _a18
from .report import __all__ as _a19

# Names fastai's `from fastai.vision.all import *` also exports: importable from here by name, but left out of
# `from allconv_fastai import *`, so a star import after fastai's never replaces fastai's objects.
_FASTAI_NAMES = ('DenseNet', 'resize_images', 'ImageSet')

__all__ = ['__version__'] + sorted({n for a in (_a0, _a1, _a2, _a3, _a4, _a5, _a6, _a7, _a8, _a9, _a10, _a11, _a12, _a13,
                                                _a14, _a15, _a16, _a17, _a18, _a19) for n in a} - set(_FASTAI_NAMES))
