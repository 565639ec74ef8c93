#!/usr/bin/python3
"""PyTorch CPU baseline for `npm run bench -- train` (bench/train.ts starts it and alternates its
steps with ours). Each step does the same work as ssql/train.ts's Trainer.step():

- the next batch of uint8 images in a random order (reshuffled each pass over the data);
- two views augmented on the fly, every image with its own random parameters drawn on the CPU as
  ssql/data/augment.ts draws them (torchvision's RandomResizedCrop sampler, scale 0.2-1, ratio
  3/4-4/3; ColorJitter 0.4/0.4/0.4/0.1 with p 0.8, its sub-ops in a random order per image,
  brightness and contrast only for 1 channel; RandomGrayscale p 0.2 for RGB; flip p 0.5;
  normalize), applied as batched torch ops on the CPU (crop, resize and flip in one bilinear
  grid_sample, align_corners=False);
- SimSiam: both views through the encoder and predictor, the symmetric negative-cosine loss;
  SSQL (docs/method.md): a fresh random bit pair each step (wbit 2-8, abit 4-8), the FP pass
  recording activation ranges, then the quantized pass (weights per-channel symmetric, fake-
  quantized once per step and shared by both views; activations per-tensor asymmetric; STE);
- backward and SGD (momentum 0.9, weight decay 5e-4).

Same models as ssql/models/resnet.ts: the small ResNet (widths 16/32/64/128, one block a stage,
projector 512, predictor 128) and the CIFAR ResNet-18 (projector 2048, predictor 512).

Usage: pytorch_train.py MODEL METHOD BATCH   (MODEL: small | resnet18; METHOD: simsiam | ssql)
Prints {"ready": true, "torch": ..., "threads": ...} once built, then reads commands from stdin,
one a line: `step` runs one step and prints {"step_ms": ...}; `quit` or end of input stops.
"""
import json, math, os, random, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- augmentation ---------------------------------------------------------------------------

MEAN_STD = {1: ([0.2860], [0.3530]), 3: ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])}
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3


def crop_params(rng, H, W, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)):
    """torchvision RandomResizedCrop.get_params: (top, left, height, width)."""
    area = H * W
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= W and 0 < h <= H:
            return rng.randint(0, H - h), rng.randint(0, W - w), h, w
    in_ratio = W / H
    if in_ratio < ratio[0]:
        w, h = W, round(W / ratio[0])
    elif in_ratio > ratio[1]:
        h, w = H, round(H * ratio[1])
    else:
        w, h = W, H
    return (H - h) // 2, (W - w) // 2, h, w


def grayscale(x):
    if x.shape[1] == 1:
        return x
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def rgb_to_hsv(x):
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_div = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / cr_div, (maxc - g) / cr_div, (maxc - b) / cr_div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), 1)


def hsv_to_rgb(x):
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int32) % 6
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    # Per pixel, the sector i (0-5) picks (r, g, b) among (v, q, p, t).
    mask = (i.unsqueeze(1) == torch.arange(6, dtype=torch.int32).view(-1, 1, 1)).to(x.dtype)
    r = torch.stack((v, q, p, p, t, v), 1)
    g = torch.stack((t, v, v, q, p, p), 1)
    b = torch.stack((p, p, t, v, v, q), 1)
    return torch.stack(((mask * r).sum(1), (mask * g).sum(1), (mask * b).sum(1)), 1)


def jitter_op(op, x, f):
    """One ColorJitter sub-op on images x [n, C, H, W] with per-image factors f [n]."""
    fv = f.view(-1, 1, 1, 1)
    if op == BRIGHTNESS:
        return (x * fv).clamp(0.0, 1.0)
    if op == CONTRAST:
        m = grayscale(x).mean((1, 2, 3), keepdim=True)
        return (fv * x + (1.0 - fv) * m).clamp(0.0, 1.0)
    if op == SATURATION:
        return (fv * x + (1.0 - fv) * grayscale(x)).clamp(0.0, 1.0)
    hsv = rgb_to_hsv(x)
    hsv[:, 0] = torch.fmod(hsv[:, 0] + f.view(-1, 1, 1) + 1.0, 1.0)
    return hsv_to_rgb(hsv)


class Augmenter:
    def __init__(self, channels, size, seed):
        self.C, self.size = channels, size
        self.rng = random.Random(seed)
        mean, std = MEAN_STD[channels]
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self.ops = [BRIGHTNESS, CONTRAST] + ([SATURATION, HUE] if channels == 3 else [])

    def view(self, images):
        """One augmented view of uint8 images [N, C, H, W]: float32 [N, C, size, size]."""
        r, N, C, S = self.rng, images.shape[0], self.C, self.size
        H, W = images.shape[2], images.shape[3]
        theta = torch.zeros(N, 2, 3)
        # Source pixel centres of the crop's first and last column and row (edge clamp inside
        # the crop, as torchvision's crop-then-resize and shaders/augment.wgsl).
        lo, hi = torch.zeros(N, 1, 1, 2), torch.zeros(N, 1, 1, 2)
        orders, factors, jittered, gray = [], torch.zeros(N, 4), [], []
        for n in range(N):
            top, left, h, w = crop_params(r, H, W)
            jitter = r.random() < 0.8
            order = []
            if jitter:
                perm = [0, 1, 2, 3]
                r.shuffle(perm)
                factors[n] = torch.tensor([r.uniform(0.6, 1.4), r.uniform(0.6, 1.4), r.uniform(0.6, 1.4), r.uniform(-0.1, 0.1)])
                order = [k for k in perm if k in self.ops]
            orders.append(order)
            jittered.append(jitter)
            gray.append(C == 3 and r.random() < 0.2)
            flip = r.random() < 0.5
            # Output x in [-1, 1] (pixel edges) -> source x: crop box [left, left + w) of W.
            theta[n, 0, 0] = (-w if flip else w) / W
            theta[n, 0, 2] = (2 * left + w) / W - 1
            theta[n, 1, 1] = h / H
            theta[n, 1, 2] = (2 * top + h) / H - 1
            lo[n, 0, 0, 0], hi[n, 0, 0, 0] = (2 * left + 1) / W - 1, (2 * (left + w) - 1) / W - 1
            lo[n, 0, 0, 1], hi[n, 0, 0, 1] = (2 * top + 1) / H - 1, (2 * (top + h) - 1) / H - 1
        x = images.float().div_(255.0)
        grid = torch.minimum(torch.maximum(F.affine_grid(theta, [N, C, S, S], align_corners=False), lo), hi)
        x = F.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)
        for pos in range(len(self.ops)):
            for op in self.ops:
                idx = [n for n in range(N) if jittered[n] and len(orders[n]) > pos and orders[n][pos] == op]
                if idx:
                    i = torch.tensor(idx)
                    x[i] = jitter_op(op, x[i], factors[i, op])
        g = [n for n in range(N) if gray[n]]
        if g:
            i = torch.tensor(g)
            x[i] = grayscale(x[i]).expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std


# ---- quantized model --------------------------------------------------------------------------

class Q:
    mode = 'off'; wbit = 0; abit = 0; generation = 0


def fq_weight(w, bits):
    if bits == 0:
        return w
    m = w.detach().abs().flatten(1).max(1)[0].view(-1, *([1] * (w.dim() - 1)))
    s = m / ((2 ** bits - 1) / 2)
    if (s == 0).any():
        return w
    q = torch.clamp(torch.round(w / s), -2 ** (bits - 1), 2 ** (bits - 1) - 1)
    return w + (q * s - w).detach()


class WeightQuant:
    """The weight a layer computes with: fake-quantized once per step (Q.generation), both views
    share it, as ssql/models/quant.ts caches it."""
    def __init__(self, fixed):
        self.fixed = fixed; self.cached = None

    def __call__(self, w):
        bits = self.fixed or Q.wbit
        if Q.mode != 'quantize' or bits == 0:
            return w
        if self.cached is None or self.cached[0] != Q.generation or self.cached[1] != bits:
            self.cached = (Q.generation, bits, fq_weight(w, bits))
        return self.cached[2]


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
        super().__init__(*a, **k); self.quant = WeightQuant(fixed)

    def forward(self, x):
        return self._conv_forward(x, self.quant(self.weight), self.bias)


class QLinear(nn.Linear):
    def __init__(self, *a, **k):
        super().__init__(*a, **k); self.quant = WeightQuant(8)

    def forward(self, x):
        return F.linear(x, self.quant(self.weight), self.bias)


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


# ---- the step ---------------------------------------------------------------------------------

class Run:
    def __init__(self, model, method, batch):
        torch.manual_seed(0)
        self.rng = random.Random(0)
        self.method, self.batch = method, batch
        if model == 'small':
            self.net, (C, S) = Net(1, [16, 32, 64, 128], [1, 1, 1, 1], 512, 128), (1, 28)
        elif model == 'resnet18':
            self.net, (C, S) = Net(3, [64, 128, 256, 512], [2, 2, 2, 2], 2048, 512), (3, 32)
        else:
            raise SystemExit(f"pytorch_train.py: unknown model '{model}' (small | resnet18)")
        if method not in ('simsiam', 'ssql'):
            raise SystemExit(f"pytorch_train.py: unknown method '{method}' (simsiam | ssql)")
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        self.aug = Augmenter(C, S, 1)
        self.images = torch.randint(0, 256, (batch * 8, C, S, S), dtype=torch.uint8)
        self.order, self.at = torch.randperm(len(self.images)), 0
        self.acts = [m for m in self.net.modules() if isinstance(m, ActQ)]

    def next_batch(self):
        if self.at + self.batch > len(self.order):
            self.order, self.at = torch.randperm(len(self.images)), 0
        idx = self.order[self.at:self.at + self.batch]
        self.at += self.batch
        return self.images[idx]

    def step(self):
        net, method = self.net, self.method
        images = self.next_batch()
        x1, x2 = self.aug.view(images), self.aug.view(images)
        self.opt.zero_grad(set_to_none=True)
        Q.generation += 1
        for a in self.acts:
            a.lo = a.hi = None
        Q.mode = 'calibrate' if method == 'ssql' else 'off'
        z1, z2 = net.encode(x1), net.encode(x2)
        p1, p2 = net.pred(z1), net.pred(z2)
        loss = (D(p1, z2) + D(p2, z1)) / 2
        if method == 'ssql':
            Q.mode, Q.wbit, Q.abit = 'quantize', self.rng.randint(2, 8), self.rng.randint(4, 8)
            p1q, p2q = net.pred(net.encode(x1)), net.pred(net.encode(x2))
            Q.mode = 'off'
            loss = 0.5 * loss + 0.5 * (D(p1q, z2) + D(p2q, z1)) / 2
        loss.backward()
        self.opt.step()


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    model, method, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(os.cpu_count() or 1)  # all cores, as our engine's lavapipe uses
    run = Run(model, method, batch)
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == 'quit':
            break
        if cmd != 'step':
            raise SystemExit(f"pytorch_train.py: unknown command '{cmd}' (step | quit)")
        t = time.perf_counter()
        run.step()
        print(json.dumps({"step_ms": (time.perf_counter() - t) * 1000}), flush=True)


main()
