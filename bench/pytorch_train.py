#!/usr/bin/python3
"""PyTorch CPU baseline for `npm run bench -- train`: the same SimSiam / SSQL training step
(SSQL-SPEC §1-§3: FP pass recording activation ranges, quantized pass with per-channel
symmetric weights and per-tensor asymmetric activations, STE) on the same model shapes, with
random inputs standing in for augmented views. Prints one JSON line per case:
{"case": ..., "median_ms": ..., "min_ms": ..., "max_ms": ..., "runs": ...}.
Usage: pytorch_train.py MODEL METHOD BATCH RUNS   (MODEL: small | resnet18)"""
import json, os, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class Q:
    mode = 'off'; wbit = 0; abit = 0


def fq_weight(w, bits):
    if bits == 0:
        return w
    m = w.detach().abs().flatten(1).max(1)[0].view(-1, *([1] * (w.dim() - 1)))
    s = m / ((2 ** bits - 1) / 2)
    if (s == 0).any():
        return w
    q = torch.clamp(torch.round(w / s), -2 ** (bits - 1), 2 ** (bits - 1) - 1)
    return w + (q * s - w).detach()


class ActQ(nn.Module):
    def __init__(self, fixed=0):
        super().__init__(); self.fixed = fixed; self.lo = None; self.hi = None

    def forward(self, x):
        if Q.mode == 'calibrate':
            lo, hi = x.detach().min(), x.detach().max()
            self.lo = lo if self.lo is None else torch.minimum(self.lo, lo)
            self.hi = hi if self.hi is None else torch.maximum(self.hi, hi)
            return x
        if Q.mode != 'quantize':
            return x
        b = self.fixed or Q.abit
        s = (self.hi - self.lo) / (2 ** b - 1)
        if s == 0:
            return x
        zp = -torch.round(self.lo / s)
        q = torch.clamp(torch.round(x / s) + zp, 0, 2 ** b - 1)
        return x + ((q - zp) * s - x).detach()


class QConv(nn.Conv2d):
    def __init__(self, *a, fixed=0, **k):
        super().__init__(*a, **k); self.fixed = fixed

    def forward(self, x):
        w = fq_weight(self.weight, self.fixed or Q.wbit) if Q.mode == 'quantize' else self.weight
        return self._conv_forward(x, w, self.bias)


class QLinear(nn.Linear):
    def forward(self, x):
        w = fq_weight(self.weight, 8) if Q.mode == 'quantize' else self.weight
        return F.linear(x, w, self.bias)


class Block(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.conv1 = QConv(i, o, 3, s, 1, bias=False); self.bn1 = nn.BatchNorm2d(o); self.a1 = ActQ()
        self.conv2 = QConv(o, o, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(o); self.ao = ActQ()
        self.down = nn.Sequential(QConv(i, o, 1, s, bias=False), nn.BatchNorm2d(o)) if s != 1 or i != o else None

    def forward(self, x):
        h = self.a1(F.relu(self.bn1(self.conv1(x))))
        y = self.bn2(self.conv2(h))
        return self.ao(F.relu(y + (self.down(x) if self.down is not None else x)))


class Net(nn.Module):
    def __init__(self, cin, widths, layers, proj, pred):
        super().__init__()
        self.conv1 = QConv(cin, widths[0], 3, 1, 1, bias=False, fixed=8); self.bn1 = nn.BatchNorm2d(widths[0]); self.a = ActQ(8)
        blocks, i = [], widths[0]
        for k, (w, n) in enumerate(zip(widths, layers)):
            for b in range(n):
                blocks.append(Block(i, w, 2 if b == 0 and k > 0 else 1)); i = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Sequential(QLinear(i, proj, bias=False), nn.BatchNorm1d(proj), nn.ReLU(), QLinear(proj, proj, bias=False),
                                nn.BatchNorm1d(proj), nn.ReLU(), QLinear(proj, proj), nn.BatchNorm1d(proj, affine=False))
        self.pred = nn.Sequential(nn.Linear(proj, pred, bias=False), nn.BatchNorm1d(pred), nn.ReLU(), nn.Linear(pred, proj))

    def encode(self, x):
        h = self.blocks(self.a(F.relu(self.bn1(self.conv1(x)))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


def D(p, z):
    return -F.cosine_similarity(p, z.detach(), dim=1, eps=1e-8).mean()


def step(net, opt, x1, x2, method):
    opt.zero_grad()
    acts = [m for m in net.modules() if isinstance(m, ActQ)]
    for a in acts:
        a.lo = a.hi = None
    Q.mode = 'calibrate' if method == 'ssql' else 'off'
    z1, z2 = net.encode(x1), net.encode(x2)
    p1, p2 = net.pred(z1), net.pred(z2)
    loss = (D(p1, z2) + D(p2, z1)) / 2
    if method == 'ssql':
        Q.mode, Q.wbit, Q.abit = 'quantize', 4, 4
        p1q, p2q = net.pred(net.encode(x1)), net.pred(net.encode(x2))
        Q.mode = 'off'
        loss = 0.5 * loss + 0.5 * (D(p1q, z2) + D(p2q, z1)) / 2
    loss.backward()
    opt.step()


def main():
    model, method, batch, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)  # all cores, as our engine's lavapipe uses
    if model == 'small':
        net, shape = Net(1, [16, 32, 64, 128], [1, 1, 1, 1], 512, 128), (batch, 1, 28, 28)
    else:
        net, shape = Net(3, [64, 128, 256, 512], [2, 2, 2, 2], 2048, 512), (batch, 3, 32, 32)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x1, x2 = torch.randn(shape), torch.randn(shape)
    step(net, opt, x1, x2, method)  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter(); step(net, opt, x1, x2, method); times.append((time.perf_counter() - t) * 1000)
    times.sort()
    print(json.dumps({"case": f"{method} {model} b{batch}", "median_ms": times[len(times) // 2], "min_ms": times[0],
                      "max_ms": times[-1], "runs": runs, "threads": torch.get_num_threads()}))


main()
