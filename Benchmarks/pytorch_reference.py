#!/usr/bin/env python3
"""PyTorch CPU reference of the LangevinFlow model, for speed comparisons.

This is the same model as the contract in the spec (`model.md`): GRU encoder with
coordinated dropout, a Gaussian initial posterior, underdamped Langevin dynamics in a
coupled-oscillator potential, a post-norm Transformer decoder, a Poisson readout and the
negative ELBO. Where the spec has options, the defaults are the released code's (lagged
encoder input, all-pairs potential). It exists only to time ONE FULL TRAINING STEP
(zero_grad, forward, backward, clip_grad_norm_, Adam step) on synthetic Poisson counts,
so that the Swift implementation can be measured against the obvious PyTorch baseline.

The Swift `lflow-dist bench` runs this script as a subprocess with matching dimensions,
for example

    python3 Benchmarks/pytorch_reference.py --hidden 280 --batch 256 --threads 1 \
        --steps 5 --warmup 1 --json /tmp/pytorch.json

and reads the JSON it writes (`median_s`, `trials_per_s`, `parameters`, ...); `--bf16` runs the
forward pass under `torch.autocast("cpu", dtype=torch.bfloat16)`. Run it by
hand the same way; `--self-check` verifies the analytic potential force against autograd
and runs a tiny forward/backward, then exits.
"""

import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LangevinFlow(nn.Module):
    """Module names follow the spec's state_dict names (encoder, linear_z_means, ...)."""

    def __init__(self, a):
        super().__init__()
        self.a = a
        H, D = a.hidden, 3 * a.hidden
        self.encoder = nn.GRUCell(a.held_in, H)
        self.gru_drop = nn.Dropout(a.gru_dropout)
        self.linear_z_means = nn.Linear(H, H)
        self.linear_z_logvar = nn.Linear(H, H)
        self.linear_v_means = nn.Linear(H, H)
        self.linear_v_logvar = nn.Linear(H, H)
        self.potential = nn.Module()
        # Spec: N(0, 0.1^2) rather than the released code's zeros (infinite gradient).
        self.potential.conv_z = nn.Parameter(0.1 * torch.randn(a.groups, a.groups, a.kernel))
        self.decoder = nn.TransformerEncoderLayer(
            d_model=D, nhead=a.heads, dim_feedforward=a.ff, dropout=a.dropout,
            activation="relu", batch_first=True, norm_first=False)
        self.readout = nn.Linear(D, a.held_in + a.held_out)
        with torch.no_grad():  # T-Fixup
            s = 0.67 * 3 ** (-0.25)
            for w in (self.decoder.linear1.weight, self.decoder.linear2.weight,
                      self.decoder.self_attn.out_proj.weight):
                w.mul_(s)

    def kernel(self):
        """W_hat = W / max(||W|| over the K taps, 1e-8), shape (G, G, K)."""
        W = self.potential.conv_z
        return W / W.norm(dim=-1, keepdim=True).clamp(min=1e-8)

    def force(self, z, W_hat):
        """Analytic f = dU/dz for the quadratic potential (see potential_energy)."""
        a, B = self.a, z.shape[0]
        Z = z.view(B, a.groups, -1)
        pad = a.kernel // 2
        if a.potential == "allPairs":
            # U = k <Vsum, S>, S = sum_j Z_j, Vsum = sum_i V_i. dU/dZ_j = k (Vsum + C^T S)_j,
            # where C^T (conv_transpose1d) is the adjoint of the conv applied to S in every
            # output channel.
            S = Z.sum(dim=1, keepdim=True)
            Vsum = F.conv1d(Z, W_hat, padding=pad).sum(dim=1, keepdim=True)
            back = F.conv_transpose1d(S.expand(-1, a.groups, -1), W_hat, padding=pad)
            f = Vsum + back
        else:  # diagonal: U = k <V, Z>, dU/dZ = k (V + C^T Z)
            f = F.conv1d(Z, W_hat, padding=pad) + F.conv_transpose1d(Z, W_hat, padding=pad)
        return (a.coupling * f).reshape(B, -1)

    def forward(self, x, keep_mask):
        a = self.a
        B, T = x.shape[0], x.shape[1]
        steps = T + a.forward
        xin = x * keep_mask / a.cd_keep                      # coordinated dropout input

        # Encoder: one GRUCell per step; the dropped state is the recurrent state.
        h = x.new_zeros(B, a.hidden)
        hs = []
        for t in range(steps):
            s = min(t - 1, T - 1) if (a.encoder_input == "lagged" and t > 0) else min(t, T - 1)
            h = self.gru_drop(self.encoder(xin[:, s], h))
            hs.append(h)

        # Initial posterior on h_0.
        lo, hi = math.log(1e-4), 5.0
        mu_z, mu_v = self.linear_z_means(hs[0]), self.linear_v_means(hs[0])
        lv_z = self.linear_z_logvar(hs[0]).clamp(lo, hi)
        lv_v = self.linear_v_logvar(hs[0]).clamp(lo, hi)
        z = mu_z + torch.exp(0.5 * lv_z) * torch.randn_like(mu_z)
        v = mu_v + torch.exp(0.5 * lv_v) * torch.randn_like(mu_v)

        # Underdamped Langevin integration.
        W_hat = self.kernel()
        noise = math.sqrt(2 * a.damping * a.temperature)
        zs, vs, mus = [z], [v], []
        for _ in range(1, steps):
            f = self.force(z, W_hat)
            z_new = z + a.dt * v
            mu = (1 - a.damping) * (v - a.dt * f / a.mass)
            v = mu + noise * torch.randn_like(mu)
            z = z_new
            zs.append(z); vs.append(v); mus.append(mu)

        # Decoder on S_t = [z_t, v_t, h_t] and Poisson readout.
        S = torch.cat([torch.stack(zs, 1), torch.stack(vs, 1), torch.stack(hs, 1)], dim=-1)
        logr = self.readout(self.decoder(S)).clamp(-8.0, 8.0)
        return logr, (mu_z, lv_z, mu_v, lv_v, torch.stack(mus, 1))


def kl_gauss(m, s2, p):
    """Summed KL(N(m, s2) || N(0, p)) per element (s2, p may be tensors or floats)."""
    r = s2 / p
    return 0.5 * (r + m * m / p - 1 - torch.log(torch.as_tensor(r, dtype=m.dtype))).sum()


def loss_fn(model, x, y, a, keep, pas):
    """Negative ELBO with the coordinated-dropout gradient mask on the reconstruction."""
    logr, (mu_z, lv_z, mu_v, lv_v, mus) = model(x, keep)
    B, T = x.shape[0], x.shape[1]
    g = torch.ones_like(logr)                       # held-out and forward entries: g = 1
    g[:, :T, :a.held_in] = ((keep == 0) | (pas == 1)).to(logr.dtype)
    l_used = logr * g + logr.detach() * (1 - g)     # same value, gradient only where g = 1
    recon = (torch.exp(l_used) - y * l_used).mean()
    trans_var = 2 * a.damping * a.temperature
    kl = (kl_gauss(mu_z, lv_z.exp(), 1.0) + kl_gauss(mu_v, lv_v.exp(), 1.0)
          + kl_gauss(mus, trans_var, a.velocity_prior_var)) / B
    return recon + a.kl_weight * kl


def make_data(a, gen):
    """Synthetic Poisson counts y (B, T+F, Nout) with per-neuron rates; x = held-in observed."""
    nout, steps = a.held_in + a.held_out, a.bins + a.forward
    rates = torch.empty(1, 1, nout).uniform_(0.05, 1.0, generator=gen)
    mod = 1 + 0.5 * torch.sin(torch.linspace(0, 3 * math.pi, steps)).view(1, steps, 1)
    y = torch.poisson((rates * mod).expand(a.batch, steps, nout).contiguous(), generator=gen)
    return y[:, :a.bins, :a.held_in].contiguous(), y


def train_step(model, opt, x, y, a):
    """One full step: masks, zero_grad, forward, backward, clip, Adam. Returns the loss."""
    keep = torch.bernoulli(torch.full_like(x, a.cd_keep))
    pas = torch.bernoulli(torch.full_like(x, 1 - a.cd_keep))
    opt.zero_grad(set_to_none=True)
    # --bf16: what a PyTorch user gets with one line, autocast's bfloat16 matmuls on the CPU.
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
        loss = loss_fn(model, x, y, a, keep, pas)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
    opt.step()
    return loss.item()


def potential_energy(model, z, W_hat):
    """U(z) per trial (B,) by its definition, for checking the analytic force."""
    a, B = model.a, z.shape[0]
    Z = z.view(B, a.groups, -1)
    V = F.conv1d(Z, W_hat, padding=a.kernel // 2)
    if a.potential == "allPairs":
        return a.coupling * (V.sum(1) * Z.sum(1)).sum(-1)
    return a.coupling * (V * Z).sum((1, 2))


def self_check(a):
    worst = 0.0
    for potential in ("allPairs", "diagonal"):
        for dtype, tol in ((torch.float64, 1e-5), (torch.float32, 1e-4)):
            b = argparse.Namespace(**{**vars(a), "potential": potential})
            model = LangevinFlow(b).to(dtype)
            z = torch.randn(8, b.hidden, dtype=dtype, requires_grad=True)
            W_hat = model.kernel().detach()
            ref, = torch.autograd.grad(potential_energy(model, z, W_hat).sum(), z)
            f = model.force(z.detach(), W_hat)
            err = (f - ref).abs().max().item()
            worst = max(worst, err / tol)
            print(f"force check {potential:8s} {str(dtype):13s}: max abs error vs autograd"
                  f" {err:.3e} (tol {tol:g}) {'ok' if err < tol else 'FAIL'}")
            if dtype == torch.float64:
                # Independent of autograd (whose conv1d backward is itself a transposed
                # conv): central differences along every coordinate of trial 0, exact for
                # a quadratic U up to rounding.
                eps, eye = 1e-3, torch.eye(b.hidden, dtype=dtype)
                z0 = z.detach()[0]
                fd = (potential_energy(model, z0 + eps * eye, W_hat)
                      - potential_energy(model, z0 - eps * eye, W_hat)) / (2 * eps)
                err = (f[0] - fd).abs().max().item()
                worst = max(worst, err / tol)
                print(f"force check {potential:8s} {str(dtype):13s}: max abs error vs central"
                      f" differences {err:.3e} (tol {tol:g}) {'ok' if err < tol else 'FAIL'}")
    # Tiny forward/backward through the whole training step.
    t = argparse.Namespace(**{**vars(a), "hidden": 16, "batch": 4, "bins": 6, "forward": 2,
                              "held_in": 5, "held_out": 3, "heads": 2, "ff": 32})
    model = LangevinFlow(t)
    opt = torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    x, y = make_data(t, torch.Generator().manual_seed(t.seed))
    losses = [train_step(model, opt, x, y, t) for _ in range(3)]
    finite = all(math.isfinite(v) for v in losses) and all(
        p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    print(f"tiny train steps: losses {', '.join(f'{v:.4f}' for v in losses)}; "
          f"gradients {'finite' if finite else 'NOT finite'}")
    ok = worst < 1 and finite
    print("self-check", "passed" if ok else "FAILED")
    return 0 if ok else 1


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    d = p.add_argument
    d("--hidden", type=int, default=280); d("--batch", type=int, default=256)
    d("--bins", type=int, default=35); d("--forward", type=int, default=10)
    d("--held-in", type=int, default=137); d("--held-out", type=int, default=45)
    d("--heads", type=int, default=2); d("--ff", type=int, default=512)
    d("--groups", type=int, default=4); d("--kernel", type=int, default=3)
    d("--threads", type=int, default=1); d("--steps", type=int, default=5)
    d("--warmup", type=int, default=1); d("--seed", type=int, default=0)
    d("--json", metavar="PATH"); d("--self-check", action="store_true")
    d("--bf16", action="store_true", help="torch.autocast('cpu', dtype=torch.bfloat16) around the forward pass")
    # Model and optimiser settings (spec defaults; beta is past the KL warm-up).
    d("--dt", type=float, default=0.01); d("--mass", type=float, default=1.0)
    d("--damping", type=float, default=0.55); d("--temperature", type=float, default=1.0)
    d("--coupling", type=float, default=1.0); d("--velocity-prior-var", type=float, default=0.1)
    d("--cd-keep", type=float, default=0.5); d("--kl-weight", type=float, default=0.1)
    d("--potential", choices=["allPairs", "diagonal"], default="allPairs")
    d("--encoder-input", choices=["lagged", "current"], default="lagged")
    d("--gru-dropout", type=float, default=0.1); d("--dropout", type=float, default=0.1)
    d("--lr", type=float, default=3e-3); d("--weight-decay", type=float, default=2e-5)
    d("--clip", type=float, default=200.0)
    a = p.parse_args(argv)
    for name in ("hidden", "batch", "bins", "forward", "held_in", "heads", "ff", "groups",
                 "kernel", "threads", "steps"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1 (got {getattr(a, name)})")
    if a.held_out < 0 or a.warmup < 0:
        p.error("--held-out and --warmup must be >= 0")
    if a.hidden % a.groups:
        p.error(f"--hidden {a.hidden} must be divisible by --groups {a.groups}")
    if (3 * a.hidden) % a.heads:
        p.error(f"decoder width 3*hidden = {3 * a.hidden} must be divisible by --heads {a.heads}")
    if a.kernel % 2 == 0:
        p.error(f"--kernel must be odd so that 'same' padding K//2 keeps length L (got {a.kernel})")
    if not 0 < a.cd_keep <= 1:
        p.error(f"--cd-keep must be in (0, 1] (got {a.cd_keep})")
    if not (0 <= a.dropout < 1 and 0 <= a.gru_dropout < 1):
        p.error("dropout rates must be in [0, 1)")
    if min(a.dt, a.mass, a.temperature, a.velocity_prior_var) <= 0 or not 0 < a.damping <= 1:
        p.error("--dt, --mass, --temperature, --velocity-prior-var must be > 0, --damping in (0, 1]")
    return a


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(a.seed)
    if a.self_check:
        return self_check(a)

    model = LangevinFlow(a).train()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8,
                           weight_decay=a.weight_decay)  # coupled L2, as the released code
    x, y = make_data(a, torch.Generator().manual_seed(a.seed))

    for _ in range(a.warmup):
        train_step(model, opt, x, y, a)
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        loss = train_step(model, opt, x, y, a)
        times.append(time.perf_counter() - t0)
        if not math.isfinite(loss):
            print(f"error: non-finite loss {loss}", file=sys.stderr)
            return 1

    srt = sorted(times)
    n = len(srt)
    median = srt[n // 2] if n % 2 else 0.5 * (srt[n // 2 - 1] + srt[n // 2])
    print(f"pytorch {torch.__version__} threads={a.threads} H={a.hidden} B={a.batch}{' bf16 autocast' if a.bf16 else ''}: "
          f"median {median:.3f} s/step (min {srt[0]:.3f}, max {srt[-1]:.3f}), "
          f"{a.batch / median:.1f} trials/s; {n_params} parameters, last loss {loss:.4f}")
    if a.json:
        result = {"torch_version": torch.__version__, "threads": a.threads, "bf16": a.bf16,
                  "hidden": a.hidden, "batch": a.batch, "bins": a.bins, "forward": a.forward,
                  "held_in": a.held_in, "held_out": a.held_out, "heads": a.heads, "ff": a.ff,
                  "step_seconds": times, "median_s": median, "min_s": srt[0],
                  "max_s": srt[-1], "trials_per_s": a.batch / median, "parameters": n_params}
        with open(a.json, "w") as fh:
            json.dump(result, fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
