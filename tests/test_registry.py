"""A net is declared once, at its definition: a thirteenth net is one decorated function, and from then on
the registry, the learners, `RunConfig`, `train_run` and the command line know it by its name and its paper name."""
import json
import pytest
from allconv_fastai.models.registry import register_arch, archs, arch_info, arch_family, arch_names, get_arch
from allconv_fastai.models.allcnn import AllCNN, n_params
from allconv_fastai.learner import allcnn_learner, densenet_learner, arch_learner
from allconv_fastai.data.loaders import digits_dls
from allconv_fastai.config import RunConfig
from allconv_fastai.train import train_run
from allconv_fastai.core import AllconvError

@pytest.fixture
def thirteenth():
    "All-CNN-C with a third of its width, registered by one decorated function (and unregistered after the test)."
    @register_arch('allcnn', 'All-CNN-C/3')
    def all_cnn_c_third(**kw):
        "All-CNN-C at a third of the width"
        return AllCNN('c', 'all-cnn', **{'widths': (32, 64), **kw})
    yield all_cnn_c_third
    del archs['all-cnn-c-third']

def test_a_thirteenth_net_is_one_decorated_function(thirteenth, tmp_path):
    assert arch_names('allcnn')[-1] == 'all-cnn-c-third' and len(arch_names('allcnn')) == 13
    a = arch_info('All-CNN-C/3')                                   # by the paper name it was given
    assert (a.name, a.family, a.paper_name, a.recipe) == ('all-cnn-c-third', 'allcnn', 'All-CNN-C/3', 'fast')
    assert arch_family(thirteenth) == 'allcnn' and arch_info('ALL_CNN_C_THIRD') is a
    assert n_params(get_arch('all-cnn-c-third')) == n_params(AllCNN('c', 'all-cnn', widths=(32, 64)))
    learn = allcnn_learner(digits_dls(size=16, bs=64), 'all-cnn-c-third', precision='fp32')
    assert learn.family == 'allcnn' and learn.recipe.name == 'fast' and learn.model[0][0].out_channels == 32
    m = train_run(tmp_path/'run', RunConfig(arch='all-cnn-c-third', data='digits', size=16, epochs=1, precision='fp32', tta=False))
    assert json.loads((tmp_path/'run'/'config.json').read_text())['arch'] == 'all-cnn-c-third' and 0 < m['valid_accuracy'] <= 1

def test_the_family_comes_from_the_registry_not_the_name():
    @register_arch('densenet', 'A DenseNet named like an All-CNN')
    def all_cnn_like(**kw):
        from allconv_fastai.models.densenet import DenseNet
        return DenseNet(10, 4, bc=True, **kw)
    try:
        assert arch_family('all-cnn-like') == 'densenet' and arch_family(all_cnn_like) == 'densenet'
        dls = digits_dls(size=16, bs=64)
        assert densenet_learner(dls, 'all-cnn-like').family == 'densenet'
        with pytest.raises(AllconvError, match="is a densenet net, not a allcnn one"): allcnn_learner(dls, 'all-cnn-like')
        assert arch_learner(dls, all_cnn_like).recipe.nesterov    # DenseNet's recipe, found through the builder
    finally: del archs['all-cnn-like']

def test_register_refuses_an_unknown_family_or_setting():
    with pytest.raises(AllconvError, match="Unknown family 'resnet'"): register_arch('resnet')
    with pytest.raises(AllconvError, match="Unknown paper setting"): register_arch('allcnn', C11=3.0)
