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
