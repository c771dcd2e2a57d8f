"`compile=True`: the net trains under `torch.compile` on the CPU, matches eager mode, and checkpoints hold the plain net."
import json
import torch
from fastai.torch_core import set_seed
from allconv_fastai import allcnn_learner, digits_dls, save_checkpoint, load_checkpoint, get_arch, RunConfig
from allconv_fastai.test_utils import ShortEpochs

def test_compiled_learner_matches_eager(tmp_path):
    dls = digits_dls(size=16, bs=64, device='cpu')
    def fit(compile):
        set_seed(0)
        learn = allcnn_learner(dls, 'all-cnn-c', widths=(8, 16), precision='fp32', compile=compile, cbs=ShortEpochs(4))
        set_seed(1)
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 0.05)
        return learn
    eager,comp = fit(False),fit(True)
    assert isinstance(comp.model, torch._dynamo.eval_frame.OptimizedModule)
    assert len(comp.recorder.losses) == len(eager.recorder.losses) == 4
    torch.testing.assert_close(torch.stack(comp.recorder.losses), torch.stack(eager.recorder.losses), rtol=1e-3, atol=1e-4)
    flat = lambda m: torch.cat([p.detach().flatten() for p in m.parameters()])
    a,b = flat(eager.model),flat(comp.model._orig_mod)
    rel = ((a-b).norm() / a.norm()).item()   # fused kernels round differently: close, not bit-equal
    assert rel < 1e-3, rel
    save_checkpoint(tmp_path/'c.pth', comp.model)            # the plain net's weights, loadable without compiling
    plain = get_arch('all-cnn-c', widths=(8, 16), bn=True, dropout=False)
    load_checkpoint(tmp_path/'c.pth', plain)
    x = dls.one_batch()[0][:4]
    torch.testing.assert_close(plain.eval()(x), comp.model._orig_mod.eval()(x))

def test_compile_is_a_run_setting(tmp_path):
    "`compile` survives config.json and reaches the learner: a run rebuilt from its record is compiled again."
    from allconv_fastai.config import save_config, read_config
    from allconv_fastai.build import run_learner
    cfg = RunConfig(compile=True, widths='8,16', size=16, precision='fp32')
    (tmp_path/'run').mkdir(); save_config(tmp_path/'run'/'config.json', cfg)
    assert json.loads((tmp_path/'run'/'config.json').read_text())['compile'] is True   # in the record, not just the default
    back = read_config(tmp_path/'run')
    assert back.to_dict() == cfg.to_dict()
    learn = run_learner(back, digits_dls(size=16, bs=64, device='cpu'))
    assert hasattr(learn.model, '_orig_mod')                       # torch.compile's wrapper around the plain net
    assert not hasattr(run_learner(RunConfig(widths='8,16', size=16, precision='fp32'), learn.dls).model, '_orig_mod')
