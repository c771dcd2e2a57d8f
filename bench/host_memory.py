"""Resident memory of CPU training with and without `TrimHostMemory`, measured side by side in one run.

Each mode trains All-CNN-C (batch norm, batches of 128, 32x32 random images) in a fresh process, so each starts from
a fresh C heap, and reads the process's resident set size (RSS) every 50 training batches. Prints the growth per batch
after the first 50 (warm-up) batches, the seconds per batch, and the ratios between the modes.

    python bench/host_memory.py --batches 250 --precision bf16
"""
import argparse, json, subprocess, sys, time

def worker(trim:bool, n_batch:int, precision:str, every:int):
    import psutil, torch
    from fastai.callback.core import Callback, CancelFitException
    from allconv_fastai import tensor_dls
    from allconv_fastai import allcnn_learner, TrimHostMemory
    torch.manual_seed(0)
    x,y = torch.randint(0, 256, (n_batch*128+128, 3, 32, 32), dtype=torch.uint8),torch.randint(0, 10, (n_batch*128+128,))
    dls = tensor_dls(x, y, [str(i) for i in range(10)], x[:256].clone(), y[:256].clone(), bs=128)
    proc = psutil.Process()
    class RSS(Callback):
        order = TrimHostMemory.order+1  # read just after any trim
        def before_fit(self): self.i,self.rows = 0,[]
        def after_batch(self):
            if not self.training: return
            self.i += 1
            if self.i==50: self.t0 = time.perf_counter()
            if self.i % 50 == 0: self.rows.append((self.i, proc.memory_info().rss/2**20))
            if self.i >= n_batch: raise CancelFitException
    learn = allcnn_learner(dls, 'all-cnn-c', bn=True, dropout=False, precision=precision)
    if trim: learn.cbs.filter(lambda c: isinstance(c, TrimHostMemory))[0].every = every
    else: learn.remove_cbs([c for c in learn.cbs if isinstance(c, TrimHostMemory)])
    rss = RSS()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 0.05, cbs=rss)
    (b0,r0),(b1,r1) = rss.rows[0],rss.rows[-1]
    print(json.dumps(dict(trim=trim, rss_start_mib=round(r0), rss_end_mib=round(r1), batches=b1-b0,
                          growth_mib_per_batch=(r1-r0)/(b1-b0), s_per_batch=(time.perf_counter()-rss.t0)/(b1-b0))))

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--batches', type=int, default=250, help='training batches per mode (the first 50 are warm-up)')
    p.add_argument('--precision', default='bf16')
    p.add_argument('--every', type=int, default=50, help='TrimHostMemory: batches between trims')
    a = p.parse_args()
    if a.batches < 100: raise SystemExit("error: --batches must be >= 100. Fix: pass --batches 250 (the first 50 are warm-up).")
    res = {}
    for trim in (False, True):
        out = subprocess.run([sys.executable, __file__, '--worker', str(int(trim)), str(a.batches), a.precision, str(a.every)],
                             capture_output=True, text=True, check=True).stdout
        res[trim] = json.loads(out.strip().splitlines()[-1])
    print(f"All-CNN-C (BN), {a.precision}, batches of 128, RSS read every 50 batches after 50 warm-up batches:")
    print("| TrimHostMemory | RSS at batch 50 (MiB) | RSS at the end (MiB) | growth (MiB/batch) | s/batch |\n|---|---|---|---|---|")
    for t,r in res.items():
        print(f"| {'every '+str(a.every) if t else 'off'} | {r['rss_start_mib']} | {r['rss_end_mib']} | "
              f"{r['growth_mib_per_batch']:.2f} | {r['s_per_batch']:.3f} |")
    print(f"time per batch, with / without: {res[True]['s_per_batch']/res[False]['s_per_batch']:.3f}")
    print(f"RSS growth per batch without: {res[False]['growth_mib_per_batch']:.2f} MiB, with: {res[True]['growth_mib_per_batch']:.2f} MiB")

if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--worker':
        worker(bool(int(sys.argv[2])), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    else: main()
