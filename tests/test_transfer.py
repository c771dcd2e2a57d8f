"""Transfer learning from the shipped All-CNN-C as fastai's `vision_learner` does it (new head, frozen body
with trainable batch norms, `fine_tune`, discriminative lrs, the card's statistics), nets that slice like
`nn.Sequential`, fastai's `Learner` left as it was by the import, fastai's image types, and the paper's names."""
import textwrap, warnings
import pytest, torch
from torch import nn
from fastai.learner import Learner
from fastai.torch_core import set_seed
from allconv_fastai import (AllconvError, all_cnn_c, allcnn_learner, arch_info, cifar_dls, densenet_learner, digits_dls,
                            find_cifar10_jpg, model_card, pretrained_model, pretrained_names, tensor_dls)
from allconv_fastai.learner import AllconvLearner, head_split
from allconv_fastai.test_utils import ShortEpochs, cifar_folder, digits5_dls
import forked
from conftest import ENV, image_folder
needs_weights = pytest.mark.skipif('all-cnn-c' not in pretrained_names(), reason="no weights in allconv_fastai/weights")
needs_jpgs = pytest.mark.skipif(find_cifar10_jpg() is None,
                                reason="no CIFAR-10 JPEGs: set ALLCONV_CIFAR10_JPG to cifar10-jpg-train.tar.gz")
# three new classes, each a group of CIFAR-10 classes: what the shipped net never had to tell apart
GROUPS = {'vehicle': ['airplane', 'automobile', 'ship', 'truck'], 'pet': ['cat', 'dog'], 'wild': ['bird', 'deer', 'frog', 'horse']}
EPOCHS = 4   # fine_tune(4): 1 epoch head only + 4 epochs all; from scratch: fit_one_cycle(5); both at the learner's lr 0.1

def trainable(ps): return [p.requires_grad for p in ps]

def bn_ids(m): return {id(p) for l in m.modules() if isinstance(l, nn.BatchNorm2d) for p in l.parameters()}

def transfer_vs_scratch(make_dls, epochs=EPOCHS, seed=0):
    "Validation accuracy of `fine_tune(epochs)` from the shipped weights and of `fit_one_cycle(epochs+1)` from scratch, each on fresh data."
    set_seed(seed); t = allcnn_learner(make_dls(), 'all-cnn-c', pretrained=True)
    with t.no_bar(), t.no_logging(): t.fine_tune(epochs); acc_t = float(t.validate()[1])
    set_seed(seed); s = allcnn_learner(make_dls(), 'all-cnn-c')
    with s.no_bar(), s.no_logging(): s.fit_one_cycle(epochs + 1); acc_s = float(s.validate()[1])
    return acc_t,acc_s

@needs_weights
def test_pretrained_learner_has_a_new_head_and_a_frozen_body():
    learn = allcnn_learner(digits_dls(size=48, bs=32), 'all-cnn-c', pretrained=True)   # other classes, another size
    assert isinstance(learn, AllconvLearner) and learn.pretrained
    m,shipped = learn.model,pretrained_model()
    assert m[-3].out_channels == 10 and not torch.equal(m[-3].weight, shipped[-3].weight)   # a new head
    assert all(torch.equal(a, b) for a,b in zip(m[:-3].state_dict().values(), shipped[:-3].state_dict().values()))
    assert m[-3].bias.abs().sum() == 0 and 0.07 < float(m[-3].weight.std()) < 0.13    # fastai's init: He normal, sqrt(2/192)
    body,bn = list(m[:-3].parameters()),bn_ids(m)
    assert trainable(body) == [id(p) in bn for p in body] and sum(trainable(body)) == 16   # 8 convs frozen, 8 BNs trainable
    assert all(trainable(m[-3:].parameters()))
    assert len(learn.opt.param_lists) == 2
    learn.unfreeze(); assert all(trainable(m.parameters()))
    learn.freeze();   assert trainable(body) == [id(p) in bn for p in body]
    norm = learn.dls.train.after_batch.fs[-1]
    torch.testing.assert_close(norm.mean.flatten().cpu(), torch.tensor(model_card()['mean']))   # the card's statistics
    assert learn.predict(learn.dls.valid_ds.x[0])[2].shape == (10,)

@needs_weights
def test_fine_tune_freeze_unfreeze_and_discriminative_lrs_as_fastai():
    learn = allcnn_learner(digits_dls(bs=32), 'all-cnn-c', pretrained=True, cbs=ShortEpochs(2))
    body0 = learn.model[0][0].weight.detach().clone()
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(1)
    assert all(trainable(learn.model.parameters()))                       # fine_tune ends unfrozen
    assert not torch.equal(learn.model[0][0].weight, body0)               # and the body did train
    assert abs(learn.recorder.lrs[0] - learn.lr/2/5) < 1e-9               # base_lr = learn.lr, halved, one-cycle from /div=5
    pgs = learn.opt.opt.param_groups
    assert abs(pgs[1]['lr'] / pgs[0]['lr'] - 100) < 1e-6                  # discriminative: slice(base_lr/2/100, base_lr/2)
    learn.freeze()
    learn.opt.set_hyper('lr', slice(1e-3, 1e-1))
    torch.testing.assert_close([pg['lr'] for pg in learn.opt.opt.param_groups], [1e-3, 1e-1])

def test_every_learner_has_a_splitter_and_freeze_refuses_to_do_nothing():
    dls = digits_dls(bs=32)
    for learn in (allcnn_learner(dls, 'model-a', widths=(16, 32)), densenet_learner(dls, 'densenet40-k12')):
        assert learn.splitter is head_split
        learn.freeze()
        assert not all(trainable(learn.model.parameters())) and all(trainable(list(learn.model.children())[-1].parameters()))
    tiny = allcnn_learner(dls, lambda n_out, **kw: nn.Sequential(nn.Flatten(), nn.Linear(3*32*32, n_out)))
    with pytest.raises(AllconvError, match="one parameter group, so freeze") as e: tiny.freeze()
    assert '\n' not in str(e.value)

@needs_weights
def test_cifar10_classes_keep_the_shipped_head_and_body_options_are_refused():
    x = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(20) % 10
    vocab = model_card()['vocab']
    learn = allcnn_learner(tensor_dls(x, y, vocab, x, y, bs=10), 'all-cnn-c', pretrained=True)
    torch.testing.assert_close(learn.model[-3].weight, pretrained_model()[-3].weight)
    rev = allcnn_learner(tensor_dls(x, y, vocab[::-1], x, y, bs=10), 'all-cnn-c', pretrained=True)
    torch.testing.assert_close(rev.model[-3].weight, pretrained_model()[-3].weight.flip(0))   # same classes, their order
    dls = digits_dls()
    for kw,msg in ((dict(widths=(32, 64)), 'would change it'), (dict(residual=True), 'would change it'),
                   (dict(bn=False), 'trained with bn=True'), (dict(recipe='paper'), 'trained with'),
                   (dict(lsuv=True), 're-initialise the shipped weights')):
        with pytest.raises(AllconvError, match=msg) as e: allcnn_learner(dls, 'all-cnn-c', pretrained=True, **kw)
        assert '\n' not in str(e.value) and 'Fix:' in str(e.value) and next(iter(kw)) in str(e.value), str(e.value)
    with pytest.raises(AllconvError, match=r"cannot take this data's 3x8x8 images"): allcnn_learner(digits_dls(size=8), pretrained=True)

@needs_weights
def test_fastais_own_dataloaders_get_the_cards_normalisation(tmp_path):
    "fastai's `ImageDataLoaders` have no `Normalize`: one is added with the card's statistics, as `vision_learner` adds a model's."
    from fastai.data.transforms import Normalize
    from fastai.vision.data import ImageDataLoaders
    image_folder(tmp_path, n_per=4, classes=('cat', 'dog', 'fox'), splits=('train', 'valid'), size=40, labels=True)
    dls = ImageDataLoaders.from_folder(tmp_path, valid='valid', bs=4, num_workers=0, device='cpu')
    learn = allcnn_learner(dls, 'all-cnn-c', pretrained=True)
    norms = [t for t in dls.train.after_batch.fs if isinstance(t, Normalize)]
    assert len(norms) == 1 and torch.allclose(norms[0].std.flatten().cpu(), torch.tensor(model_card()['std']))
    assert learn.model[-3].out_channels == 3 and sum(trainable(learn.model[:-3].parameters())) == 16
    with learn.no_bar(), learn.no_logging(), learn.added_cbs(ShortEpochs(1)): learn.fine_tune(1)
    assert learn.predict(tmp_path/'valid'/'cat'/'0000.png')[0] in ('cat', 'dog', 'fox')

@needs_weights
@needs_jpgs
def test_fine_tune_beats_training_from_scratch_on_relabelled_cifar(tmp_path):
    root = cifar_folder(tmp_path/'mine', GROUPS, n_train=30, n_valid=100)
    make = lambda: cifar_dls(root, bs=16, cache_dir=tmp_path/'cache')
    dls = make()
    assert dls.vocab == sorted(GROUPS) and len(dls.train_ds) == 90 and len(dls.valid_ds) == 300
    acc_t,acc_s = transfer_vs_scratch(make)
    print(f"TRANSFER_NUMBERS relabelled CIFAR-10 ({dls.data_name}): fine_tune({EPOCHS}) {acc_t:.3f}, "
          f"from scratch fit_one_cycle({EPOCHS+1}) {acc_s:.3f}, both at lr 0.1 (chance 0.333)")
    assert acc_t >= 0.75 and acc_t >= acc_s + 0.15

@needs_weights
def test_far_domain_digits_reports_whichever_wins():
    "A far domain: which wins is reported, not assumed; the winner must learn."
    acc_t,acc_s = transfer_vs_scratch(digits5_dls)
    print(f"TRANSFER_NUMBERS digits 0-4 ({digits5_dls().data_name}): fine_tune({EPOCHS}) {acc_t:.3f}, "
          f"from scratch fit_one_cycle({EPOCHS+1}) {acc_s:.3f}, both at lr 0.1 (chance 0.2): "
          f"{'transfer' if acc_t > acc_s else 'from scratch'} wins")
    assert max(acc_t, acc_s) >= 0.6

def test_nets_slice_like_sequential_and_take_fastais_body_head_idiom():
    from fastai.vision.learner import create_body, create_head, default_split
    from fastai.losses import CrossEntropyLossFlat
    m = all_cnn_c(bn=True, dropout=False).eval()
    body,head = m[:-3],m[-3:]
    assert type(body) is nn.Sequential and len(body) == 8 and type(m[-1]).__name__ == 'Flatten' and m[-3].out_channels == 10
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(head(body(x)), m(x))
    net = nn.Sequential(create_body(all_cnn_c(), cut=-3), create_head(192, 3)).eval()
    assert net(x).shape == (2, 3)
    learn = Learner(digits_dls(bs=32), net, loss_func=CrossEntropyLossFlat(), splitter=default_split)   # fastai's body/head split
    learn.freeze(); assert not any(trainable(p for p in net[0].parameters() if id(p) not in bn_ids(net[0])))

def test_import_leaves_fastai_as_it_was():
    "Every attribute of fastai's classes and modules is the same object before and after `from allconv_fastai import *`."
    code = textwrap.dedent("""
        import sys, inspect, warnings
        warnings.simplefilter('ignore')
        mods = %r
        for n in mods: __import__(n)
        def snap():
            out = {}
            for n in mods:
                mod = sys.modules[n]
                for k,v in list(vars(mod).items()):
                    out[(n, k)] = id(v)
                    if inspect.isclass(v) and v.__module__.startswith('fastai'):
                        for a,w in list(vars(v).items()): out[(n, k, a)] = id(w)
            return out
        from fastai.learner import Learner
        before,fns = snap(),(Learner.to_fp16, Learner.to_bf16, Learner.to_fp32)
        from allconv_fastai import *   # the whole package (its names load on first use)
        after = snap()
        changed = sorted(str(k) for k in before if after.get(k) != before[k])
        assert not changed, changed[:20]
        assert (Learner.to_fp16, Learner.to_bf16, Learner.to_fp32) == fns and all(f.__module__ == 'fastai.callback.fp16' for f in fns)
        print('same', len(before))""")
    # first the fastai modules the package imports, then compare them around the import
    p = forked.run(['-W', 'ignore', '-c', "import sys; from allconv_fastai import *; "
                    "print(' '.join(sorted(n for n in sys.modules if n == 'fastai' or n.startswith('fastai.'))))"],
                   env=ENV, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    mods = p.stdout.split()
    assert 'fastai.callback.fp16' in mods and 'fastai.learner' in mods
    r = forked.run(['-c', code % (mods,)], env=ENV, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith('same'), r.stderr[-3000:]

def test_a_plain_fastai_learner_behaves_as_stock_fastai():
    "After the import, fastai's own `Learner.to_fp16()` on a CPU adds `MixedPrecision` as stock fastai does (ours refuses)."
    from fastai.callback.fp16 import MixedPrecision
    from fastai.losses import CrossEntropyLossFlat
    from allconv_fastai import allcnn_learner  # noqa: F401 (loads the whole package)
    dls = digits_dls(bs=32, device='cpu')
    plain = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3*32*32, 10)), loss_func=CrossEntropyLossFlat())
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        plain.to_fp16()
    assert type(plain) is Learner and any(isinstance(c, MixedPrecision) for c in plain.cbs)
    plain.to_fp32(); assert not any(isinstance(c, MixedPrecision) for c in plain.cbs)
    ours = allcnn_learner(dls, 'model-a', widths=(16, 32))
    with pytest.raises(AllconvError, match='needs a CUDA device'): ours.to_fp16()

def test_the_papers_names_resolve():
    for s in ('densenet-bc-100', 'DenseNet-BC (L=100, k=12)', 'densenet-bc (l=100, k=12)', 'densenet_bc100_k12'):
        assert arch_info(s).name == 'densenet-bc100-k12', s
    learn = densenet_learner(digits_dls(bs=32), 'densenet-bc-100')
    assert (learn.model.depth, learn.model.growth, learn.model.bc) == (100, 12, True)
    with pytest.raises(AllconvError, match="did you mean 'densenet100-k12' or 'densenet100-k24'"): arch_info('densenet-100')
