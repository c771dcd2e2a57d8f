"Host memory stays flat over CPU training batches: the learners' `TrimHostMemory` returns freed heap pages."
import psutil, pytest, torch
from fastai.callback.core import Callback, CancelFitException
from allconv_fastai import tensor_dls, allcnn_learner, TrimHostMemory, malloc_trim
from allconv_fastai.callback.precision import CPUAutocast

@pytest.mark.skipif(malloc_trim() is None, reason="the C library has no malloc_trim (not glibc): nothing to test")
def test_rss_stays_flat_during_cpu_training():
    # Without the callback, All-CNN-C (BN, bf16, batches of 128) grew 1.62 MiB a batch on one of this project's 2-core
    # CPUs on 2026-11-22, which one not recorded (`python bench/host_memory.py --batches 250`). Here the learner trims every 10 batches instead of 50, so that 30
    # batches show it: RSS is read just before and just after each trim.
    torch.manual_seed(0)
    n = 32*128
    x,y = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8),torch.randint(0, 10, (n,))
    dls = tensor_dls(x, y, [str(i) for i in range(10)], x[:256].clone(), y[:256].clone(), bs=128, device='cpu')
    learn = allcnn_learner(dls, 'all-cnn-c', bn=True, dropout=False)
    trims = [c for c in learn.cbs if isinstance(c, TrimHostMemory)]
    assert [type(c) for c in trims] == [TrimHostMemory] and trims[0].every == 50
    trims[0].every = 10
    proc,rss = psutil.Process(),{}
    class ReadRSS(Callback):
        def __init__(self, when): self.when,self.order = when,TrimHostMemory.order + (1 if when == 'after' else -1)
        def before_fit(self): self.i = 0
        def after_batch(self):
            self.i += 1
            if self.i % 10 == 0: rss[self.i, self.when] = proc.memory_info().rss/2**20
            if self.i == 30 and self.when == 'after': raise CancelFitException
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 0.05, cbs=[ReadRSS('before'), ReadRSS('after')])
    assert len(learn.recorder.losses) == 30 and torch.isfinite(learn.recorder.losses[-1]) and trims[0].n_trims == 3
    freed = [rss[i, 'before'] - rss[i, 'after'] for i in (10, 20, 30)]
    # after each trim RSS is back where it was; without the trims it keeps growing (bench/host_memory.py)
    assert rss[30, 'after'] - rss[10, 'after'] < 16, f"RSS grew {rss[30, 'after'] - rss[10, 'after']:.0f} MiB over 20 batches ({rss})"
    if any(isinstance(c, CPUAutocast) for c in learn.cbs):   # bf16: each trim returned the freed heap the leak is made of
        assert min(freed) > 8, (freed, rss)   # half what 10 batches of the 1.62 MiB-a-batch leak leave
