"The installed package exposes its public names at the top level, leaves fastai's names alone, and keeps test helpers apart."

def test_star_import_exposes_models():
    ns = {}
    exec("from allconv_fastai import *", ns)
    for name in ("all_cnn_c", "model_a", "strided_cnn_b", "convpool_cnn_c", "get_arch", "RunConfig", "AllconvError"):
        assert name in ns, name

def test_star_imports_keep_fastai_names():
    "`from allconv_fastai import *` after fastai's star import replaces none of fastai's names."
    ns = {}
    exec("from fastai.vision.all import *\nimport fastai.vision.all as fva\nfrom allconv_fastai import *", ns)
    assert callable(ns['models'].resnet18)
    for name in ('resize_images', 'DenseNet'): assert ns[name] is getattr(ns['fva'], name), name

def test_test_helpers_are_not_top_level():
    "Test helpers live in `allconv_fastai.test_utils`, as fastai's do, not in the package's public API."
    import allconv_fastai
    for name in ('ShortEpochs', 'InterruptAfter', 'RecordShard', 'png_tree'):
        assert name not in allconv_fastai.__all__ and not hasattr(allconv_fastai, name), name
    from allconv_fastai.test_utils import ShortEpochs, InterruptAfter, RecordShard  # noqa: F401
