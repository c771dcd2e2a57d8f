__version__ = "0.1.0"

import warnings
# fastai's import of `torch.jit.script` warns on torch >= 2.10; it is not ours to fix and says nothing to a user
warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated', category=FutureWarning)

from .core import *
from .models.allcnn import *
from .models.densenet import *
from .data import *
from .learner import *
from .interpret import *
from .experiments import *
