__version__ = "0.1.0"

from .core import *
from .models.allcnn import *
from .models.densenet import *
from .data import *
from .learner import *
from .interpret import *
