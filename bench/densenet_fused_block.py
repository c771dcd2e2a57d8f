"""Experiment, not used by the library: a DenseNet-BC dense block as one autograd function over a preallocated buffer.

Forward: one pixel-major buffer per block (rows are pixels, columns channels); each layer writes its k new channels
into it, and BN-ReLU-1x1 conv of the prefix runs in row chunks so the BN-ReLU output stays in cache. Backward: by
hand, with each feature map's batch statistics shared by all the BNs that read it, so the BN backward's batch-mean
terms are applied once per feature map instead of once per reading layer. In float64 it matches the plain block to
1e-13 (outputs, gradients, running statistics); in bf16 it is as close to fp32 as the plain block is. It is
*slower* than the plain block on a CPU with eager PyTorch (see bench/results/densenet-speed.txt): its per-chunk ops
hit slow kernels (BN backward on a column slice of a matrix ~13x slower than on a channels-last tensor, 12-column
copies and reductions with inner runs shorter than one vector). Kept for `bench/densenet_speed.py` and as a start
for a compiled kernel.
"""
import torch, torch.nn.functional as F
from torch import nn
aten = torch.ops.aten

def _bn_factor(bn):
    "The running-statistics momentum `bn` uses for this batch (as `_BatchNorm.forward` computes it), counting the batch."
    bn.num_batches_tracked.add_(1)
    return 1/float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum

def _rows(c, itemsize): return max(256, (1<<19)//(c*itemsize))   # ~512 KiB of BN-ReLU output per chunk: stays in L2

class _BottleneckBlockFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, block, dt, x, *params):
        with torch.autocast(x.device.type, enabled=False):
            ls = block.layers
            B,c0,H,W = x.shape; k = ls[0].last[2].out_channels; nb = ls[0].first[2].out_channels
            C,R = c0 + len(ls)*k, B*H*W
            buf = x.new_empty(R, C, dtype=dt)
            buf4 = buf.view(B,H,W,C).permute(0,3,1,2)
            buf4[:, :c0] = x
            sdt = torch.promote_types(dt, torch.float32)   # statistics and parameter gradients: fp32 at least
            var,mean = x.new_empty(C, dtype=sdt),x.new_empty(C, dtype=sdt)
            def stats(lo, hi):
                v,m = torch.var_mean(buf[:, lo:hi].to(sdt), 0, correction=0); var[lo:hi] = v; mean[lo:hi] = m
            stats(0, c0)
            eps = ls[0].first[0].eps; rc = _rows(C, buf.element_size())
            saved = []
            for i,l in enumerate(ls):
                c = c0 + i*k
                bn1,conv1,bn2,conv2 = l.first[0],l.first[2],l.last[0],l.last[2]
                f = _bn_factor(bn1)
                bn1.running_mean.lerp_(mean[:c], f); bn1.running_var.lerp_(var[:c]*(R/(R-1)), f)
                s = bn1.weight.detach()*(var[:c]+eps).rsqrt(); t = bn1.bias.detach() - mean[:c]*s
                s,t = s.to(dt),t.to(dt)
                w1 = conv1.weight.detach().view(nb, c).to(dt).t()
                u = buf.new_empty(R, nb)
                for r in range(0, R, rc): torch.mm(torch.addcmul(t, buf[r:r+rc, :c], s).relu_(), w1, out=u[r:r+rc])
                h2,m2,is2 = aten.native_batch_norm(u, bn2.weight.detach(), bn2.bias.detach(), bn2.running_mean, bn2.running_var, True, _bn_factor(bn2), bn2.eps)
                h2 = h2.relu_()
                h24 = h2.view(B,H,W,nb).permute(0,3,1,2)
                buf4[:, c:c+k] = F.conv2d(h24, conv2.weight.detach().to(dt), padding=conv2.padding)
                stats(c, c+k)
                saved += [u, h2, m2, is2]
            ctx.save_for_backward(buf, mean, var, *saved)
            ctx.block,ctx.shape,ctx.dt,ctx.xdt = block,(B,c0,H,W,C,R,k,nb),dt,x.dtype
            return buf4

    @staticmethod
    def backward(ctx, gout):
        with torch.autocast(gout.device.type, enabled=False):
            buf,mean,var,*saved = ctx.saved_tensors
            B,c0,H,W,C,R,k,nb = ctx.shape; dt = ctx.dt; ls = ctx.block.layers
            eps = ls[0].first[0].eps; rc = _rows(C, buf.element_size())
            G = gout.permute(0,2,3,1).to(dt).clone(memory_format=torch.contiguous_format).view(R, C)
            invstd = (var+eps).rsqrt()
            A,Bc = torch.zeros_like(mean),torch.zeros_like(mean)
            def finalize(lo, hi):  # the batch-mean terms of every BN that read channels lo:hi, applied once
                xhat = (buf[:, lo:hi].to(mean.dtype) - mean[lo:hi])*invstd[lo:hi]
                G[:, lo:hi] = G[:, lo:hi].to(mean.dtype) - A[lo:hi] - xhat*Bc[lo:hi]
            grads = []
            for i in reversed(range(len(ls))):
                l = ls[i]; c = c0 + i*k
                bn1,conv1,bn2,conv2 = l.first[0],l.first[2],l.last[0],l.last[2]
                u,h2,m2,is2 = saved[4*i:4*i+4]
                finalize(c, c+k)
                dF = G[:, c:c+k].reshape(B,H,W,k).permute(0,3,1,2)
                h24 = h2.view(B,H,W,nb).permute(0,3,1,2)
                dh2,dw2,_ = aten.convolution_backward(dF, h24, conv2.weight.detach().to(dt), None, conv2.stride, conv2.padding,
                                                      conv2.dilation, False, [0,0], 1, [True,True,False])
                g2 = aten.threshold_backward(dh2, h24, 0).permute(0,2,3,1).reshape(R, nb)
                du,dg2,db2 = aten.native_batch_norm_backward(g2, u, bn2.weight.detach(), None, None, m2, is2, True, bn2.eps, [True,True,True])
                s = bn1.weight.detach()*invstd[:c]; t = bn1.bias.detach() - mean[:c]*s
                s_,t_ = s.to(dt),t.to(dt)
                w1 = conv1.weight.detach().view(nb, c).to(dt)
                sdt = mean.dtype; dw1 = torch.zeros(nb, c, dtype=sdt); dg1 = torch.zeros(c, dtype=sdt); db1 = torch.zeros(c, dtype=sdt)
                for r in range(0, R, rc):
                    X = buf[r:r+rc, :c]; d = du[r:r+rc]
                    h = torch.addcmul(t_, X, s_).relu_()
                    dw1 += d.t() @ h
                    g = aten.threshold_backward(d @ w1, h, 0)
                    _,a,b = aten.native_batch_norm_backward(g, X, bn1.weight.detach(), None, None, mean[:c], invstd[:c], True, eps, [False,True,True])
                    dg1 += a; db1 += b
                    G[r:r+rc, :c].addcmul_(g, s_)
                A[:c] += s*db1/R; Bc[:c] += s*dg1/R
                grads = [g.to(p.dtype) for g,p in zip([dg1, db1, dw1.view_as(conv1.weight), dg2, db2, dw2], (bn1.weight, bn1.bias, conv1.weight, bn2.weight, bn2.bias, conv2.weight))] + grads
            finalize(0, c0)
            dx = G[:, :c0].reshape(B,H,W,c0).permute(0,3,1,2).to(ctx.xdt)
            return (None, None, dx, *grads)

def fused_forward(self, x):
    "`DenseBlock.forward` through `_BottleneckBlockFn` (training mode, DenseNet-BC without dropout only)."
    if not self.training: return _list_forward(self, x)
    params = [p for l in self.layers for p in (l.first[0].weight, l.first[0].bias, l.first[2].weight, l.last[0].weight, l.last[0].bias, l.last[2].weight)]
    dt = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
    return _BottleneckBlockFn.apply(self, dt, x, *params)

def _list_forward(self, x):
    feats = [x]
    for l in self.layers: feats.append(l(feats))
    return torch.cat(feats, 1)
