"Host memory stays flat over hundreds of CPU training batches: the learners' `TrimHostMemory` returns freed heap pages."
import psutil, pytest, torch
from fastai.callback.core import Callback, CancelFitException
from allconv_fastai import tensor_dls, allcnn_learner, TrimHostMemory, malloc_trim

@pytest.mark.skipif(malloc_trim() is None, reason="the C library has no malloc_trim (not glibc): nothing to test")
def test_rss_stays_flat_during_cpu_training():
    # Without the callback, All-CNN-C (BN, bf16, batches of 128) grew 1.62 MiB a batch on this project's CPU
    # (`python bench/host_memory.py --batches 250`), i.e. about 80 MiB over the 50 batches measured here.
    torch.manual_seed(0)
    n = 110*128
    x,y = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8),torch.randint(0, 10, (n,))
    dls = tensor_dls(x, y, [str(i) for i in range(10)], x[:256].clone(), y[:256].clone(), bs=128, device='cpu')
    learn = allcnn_learner(dls, 'all-cnn-c', bn=True, dropout=False)
    assert [type(c) for c in learn.cbs if isinstance(c, TrimHostMemory)] == [TrimHostMemory]
    proc,rss = psutil.Process(),{}
    class ReadRSS(Callback):
        order = TrimHostMemory.order+1  # just after the trims at batches 50 and 100
        def before_fit(self): self.i = 0
        def after_batch(self):
            self.i += 1
            if self.i in (50, 100): rss[self.i] = proc.memory_info().rss/2**20
            if self.i == 100: raise CancelFitException
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 0.05, cbs=ReadRSS())
    assert len(learn.recorder.losses) == 100 and torch.isfinite(learn.recorder.losses[-1])
    assert rss[100] - rss[50] < 32, f"RSS grew {rss[100]-rss[50]:.0f} MiB over 50 batches ({rss})"
