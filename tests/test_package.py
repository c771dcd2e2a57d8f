"The installed package imports cleanly and exposes its public names at the top level."
import subprocess, sys

def test_star_import_exposes_models():
    ns = {}
    exec("from allconv_fastai import *", ns)
    for name in ("all_cnn_c", "model_a", "strided_cnn_b", "convpool_cnn_c", "get_arch", "RunConfig", "AllconvError"):
        assert name in ns, name

def test_import_does_no_heavy_work():
    "Importing the package must not build models or touch data: it stays fast and quiet."
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", "import allconv_fastai"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""

def test_test_helpers_are_not_top_level():
    "Test helpers live in `allconv_fastai.test_utils`, as fastai's do, not in the package's public API."
    import allconv_fastai
    for name in ('ShortEpochs', 'InterruptAfter', 'RecordShard', 'png_tree'):
        assert name not in allconv_fastai.__all__ and not hasattr(allconv_fastai, name), name
    from allconv_fastai.test_utils import ShortEpochs, InterruptAfter, RecordShard  # noqa: F401
