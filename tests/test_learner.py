"""The learner factories' defaults, as fastai's idiom uses them: the Python default is the fast recipe."""
import pytest

@pytest.mark.slow
def test_fastai_idiom_reaches_95_percent():
    "`allcnn_learner(digits_dls(), 'all-cnn-c', metrics=accuracy).fit_one_cycle(8)` reaches 95% with every default."
    from fastai.metrics import accuracy
    from fastai.torch_core import set_seed
    from allconv_fastai import allcnn_learner, digits_dls
    set_seed(0)
    learn = allcnn_learner(digits_dls(), 'all-cnn-c', metrics=accuracy)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(8)
    acc = learn.validate()[1]
    print(f"valid accuracy after fit_one_cycle(8): {acc:.4f}")
    assert acc >= 0.95
