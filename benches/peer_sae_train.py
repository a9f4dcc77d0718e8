"""The peer for `cargo run --release -p audiosae --example bench_sae`: the seed notebook's
OpenSAE and train_sae loop (section 4) in PyTorch as written (AdamW, CosineAnnealingLR, grad-norm
clip 1.0), with the batches already in memory so only the training step is timed.

Prints one JSON line: frames/s, seconds per step and the mean loss of the last steps.
"""
import argparse
import contextlib
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class OpenSAE(nn.Module):  # seed notebook, section 4; only decode's shape bug fixed
    def __init__(self, d_in, d_hidden, topk=None, l1_coef=5e-4, pre_bias=True, unit_norm_decoder=True):
        super().__init__()
        self.d_in = d_in
        self.d_hidden = d_hidden
        self.topk = topk
        self.l1_coef = l1_coef
        self.pre_bias = nn.Parameter(torch.zeros(d_in)) if pre_bias else None
        self.E = nn.Parameter(torch.empty(d_hidden, d_in).normal_(0, 0.02))
        self.D = nn.Parameter(torch.empty(d_in, d_hidden).normal_(0, 0.02))
        self.unit_norm_decoder = unit_norm_decoder
        self.register_buffer("dead_mask", torch.ones(d_hidden, dtype=torch.bool))

    def encode(self, x):
        if self.pre_bias is not None:
            x = x + self.pre_bias
        h = F.linear(x, self.E)
        h = F.relu(h)
        if self.topk is not None:
            k = min(self.topk, h.shape[-1])
            topk_vals, topk_idx = torch.topk(h, k=k, dim=-1)
            mask = torch.zeros_like(h)
            mask.scatter_(dim=-1, index=topk_idx, src=torch.ones_like(topk_vals))
            h = h * mask
        return h

    def decode(self, h):
        D = self.D
        if self.unit_norm_decoder:
            D = F.normalize(D, dim=0)
        # The seed writes F.linear(h, D.t()), i.e. h @ D, which fails for D [d_in, d_hidden]
        # (shapes [B, d_hidden] x [d_in, d_hidden]); its intent is x̂ = D h, i.e. F.linear(h, D).
        x_hat = F.linear(h, D)
        if self.pre_bias is not None:
            x_hat = x_hat - self.pre_bias
        return x_hat

    def forward(self, x):
        h = self.encode(x)
        return self.decode(h), h

    def loss(self, x, x_hat, h):
        rec = F.mse_loss(x_hat, x)
        l1 = h.abs().sum(dim=-1).mean()
        return rec + self.l1_coef * l1, {"rec": rec.detach(), "l1": l1.detach()}

    @torch.no_grad()
    def resample_dead_units(self, h_batch, thresh=1e-6):
        mean_act = (h_batch.abs() > thresh).float().mean(dim=0)
        dead = mean_act < 1e-4
        num_dead = int(dead.sum().item())
        if num_dead > 0:
            self.E.data[dead] = torch.empty_like(self.E.data[dead]).normal_(0, 0.02)
            self.D.data[:, dead] = torch.empty_like(self.D.data[:, dead]).normal_(0, 0.02)
        self.dead_mask = ~dead
        return num_dead


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d-in", type=int, required=True)
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--pool", type=int, default=4, help="distinct batches held in memory")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tail", type=int, default=3, help="steps averaged for the final loss")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"], help="bf16: torch.autocast (CUDA)")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    # Same generator order as the Rust side: the SAE's E and D, then the data.
    torch.manual_seed(a.seed)
    sae = OpenSAE(d_in=a.d_in, d_hidden=a.width, topk=a.k, l1_coef=5e-4)
    data = torch.randn(a.pool * a.batch, a.d_in)
    dev = torch.device(a.device)
    sae, data = sae.to(dev), data.to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def autocast():
        if a.dtype == "bf16":
            return torch.autocast(dev.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    batches = [data[i * a.batch:(i + 1) * a.batch] for i in range(a.pool)]
    total = a.warmup + a.steps
    opt = torch.optim.AdamW(sae.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    losses = []
    for step in range(1, total + 1):
        if step == a.warmup + 1:
            sync()
            t0 = time.perf_counter()
        x = batches[(step - 1) % a.pool]
        with autocast():
            x_hat, h = sae(x)
            loss, parts = sae.loss(x, x_hat, h)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(sae.parameters(), max_norm=1.0)
        opt.step()
        sched.step()
        if step % 250 == 0:
            with torch.no_grad():
                sae.resample_dead_units(h)
        if step > total - a.tail:
            losses.append(loss.detach())  # read after the clock stops: no per-step sync
    sync()
    dt = time.perf_counter() - t0
    print(json.dumps({
        "frames_per_s": a.steps * a.batch / dt,
        "s_per_step": dt / a.steps,
        "final_loss": float(sum(losses)) / len(losses),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(dev),
        "dtype": a.dtype,
    }))


if __name__ == "__main__":
    main()
