"The three backward rules of `allconv_fastai.interpret` against an independent hand-written chain rule."
import copy
import torch
from torch import nn
from hypothesis import given, settings, strategies as st
from allconv_fastai.interpret import BackpropRule, input_grad, backprop_rules, _all_hooks
from allconv_fastai.models.allcnn import all_cnn_c


def _mask(R, h, rule):
    "The rule at one ReLU, written out again here so the test does not use the code under test."
    if rule == 'plain': return R * (h > 0).double()
    if rule == 'deconvnet': return R * (R > 0).double()
    return R * (h > 0).double() * (R > 0).double()


def _reference(Ws, v, x, rule):
    "Input gradient of `v . relu(W_k ... relu(W_1 x))` with `rule` at every ReLU, by explicit matrix products."
    hs, a = [], x
    for W in Ws:
        h = W @ a
        hs.append(h)
        a = h.clamp(min=0)
    R = v.clone()
    for W, h in zip(reversed(Ws), reversed(hs)):
        R = W.T @ _mask(R, h, rule)
    return R


def _mlp(Ws, v, inplace):
    layers = []
    for W in Ws:
        lin = nn.Linear(W.shape[1], W.shape[0], bias=False).double()
        with torch.no_grad(): lin.weight.copy_(W)
        layers += [lin, nn.ReLU(inplace=inplace)]
    out = nn.Linear(len(v), 1, bias=False).double()
    with torch.no_grad(): out.weight.copy_(v[None])
    return nn.Sequential(*layers, out)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), depth=st.integers(1, 3), width=st.integers(1, 5), inplace=st.booleans(),
       rule=st.sampled_from(backprop_rules))
def test_rules_match_hand_chain(seed, depth, width, inplace, rule):
    g = torch.Generator().manual_seed(seed)
    dims = [3] + [width] * depth
    Ws = [torch.randn(dims[i + 1], dims[i], generator=g, dtype=torch.float64) for i in range(depth)]
    v = torch.randn(width, generator=g, dtype=torch.float64)
    x = torch.randn(3, generator=g, dtype=torch.float64)
    net = _mlp(Ws, v, inplace)
    got = input_grad(net, x[None], unit=0, rule=rule)[0]
    torch.testing.assert_close(got, _reference(Ws, v, x, rule), rtol=1e-12, atol=1e-12)
    assert _all_hooks(net) == 0


def test_shared_relu_module_used_twice():
    "One `nn.ReLU` called twice in a forward gets the rule both times (the hooks keep one input per call)."
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.out = nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False)
            self.act = nn.ReLU(inplace=True)
        def forward(self, x): return self.out(self.act(self.b(self.act(self.a(x)))))
    net = Twice().double()
    Ws = [net.a.weight.detach(), net.b.weight.detach()]
    v = net.out.weight.detach()[0]
    x = torch.tensor([0.3, -1.2], dtype=torch.float64)
    for rule in backprop_rules:
        torch.testing.assert_close(input_grad(net, x[None], unit=0, rule=rule)[0], _reference(Ws, v, x, rule))


def test_model_restored_exactly():
    torch.manual_seed(0)
    m = all_cnn_c(bn=True)
    m[2].eval()                         # a mixed train/eval state must come back as it was
    m[1][1].bias.requires_grad_(False)      # the first batch norm's shift, frozen
    twin = copy.deepcopy(m)
    x = torch.randn(2, 3, 32, 32)
    for rule in backprop_rules: input_grad(m, x, rule=rule)
    assert _all_hooks(m) == 0
    assert [l.training for l in m.modules()] == [l.training for l in twin.modules()]
    assert [p.requires_grad for p in m.parameters()] == [p.requires_grad for p in twin.parameters()]
    assert all(p.grad is None for p in m.parameters())
    for net in (m, twin): net.eval(); net(x).square().sum().backward()
    torch.testing.assert_close(m(x), twin(x), rtol=0, atol=0)
    for p, q in zip(m.parameters(), twin.parameters()):
        if p.grad is not None or q.grad is not None: torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0)


def test_guided_on_allcnn_differs_and_keeps_shape():
    torch.manual_seed(1)
    m = all_cnn_c(dropout=False)
    x = torch.randn(3, 3, 32, 32)
    maps = {r: input_grad(m, x, rule=r) for r in backprop_rules}
    assert all(g.shape == x.shape for g in maps.values())
    assert not torch.allclose(maps['guided'], maps['plain'])
    assert not torch.allclose(maps['guided'], maps['deconvnet'])


def test_densenet():
    "DenseNet's ReLUs are modules too, so the rules reach all of them and the model comes back untouched."
    from allconv_fastai.models.densenet import densenet40_k12 as make
    torch.manual_seed(0)
    m = make()
    twin = copy.deepcopy(m)
    x = torch.randn(1, 3, 32, 32)
    with BackpropRule(m, 'guided') as br: assert len(br.relus) > 0
    maps = {r: input_grad(m, x, rule=r) for r in backprop_rules}   # raises if a functional relu is in the way
    assert all(g.shape == x.shape for g in maps.values())
    assert not torch.allclose(maps['guided'], maps['plain'])
    assert _all_hooks(m) == 0
    m.eval(); twin.eval()
    torch.testing.assert_close(m(x), twin(x), rtol=0, atol=0)
    # the checkpointed (memory-efficient) net re-runs its forward during backward: the hooks still apply the rule
    eff = make(efficient=True)
    eff.load_state_dict(m.state_dict())
    for r in backprop_rules: torch.testing.assert_close(input_grad(eff, x, rule=r), maps[r])
    assert _all_hooks(eff) == 0
