"The nets: importing this package registers the papers' nets (`models.allcnn`, `models.densenet`) in `models.registry`."
from . import allcnn, densenet
