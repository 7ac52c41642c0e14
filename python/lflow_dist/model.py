"""LangevinFlow as a torch.nn.Module, loaded from an lflow-dist checkpoint.

The forward pass is lflow-dist's (Sources/Model/*.swift, the contract in shared/spec/model.md),
operation for operation, for every option of its config:

1. input x: held-in spike counts of the observed bins, NaN (missing) read as 0;
2. encoder: a GRUCell (`encoder.*`) over steps t = 0 ... T+F-1 reading bin s(t) = min(t, T-1)
   (`encoderInput: current`) or min(max(t-1, 0), T-1) (`lagged`); with `encoder:
   bidirectional` a second GRUCell (`encoder_reverse.*`) runs from the last step to the first
   reading bin t (current) or t+1 (lagged), only b_ih past the window, and h_t is the sum;
3. posterior: Linear heads on h_0 for (mu, log var) of z_0 and, in second order, v_0; log
   variances clamped to [ln 1e-4, 5]; with `posterior: perStep` heads `linear_u_*` on h_t give
   the innovation u_t of every step t >= 1;
4. potential: f(z) = z A with A = kappa (B + B^T) built from the normalised conv kernel
   (`allPairs` or `diagonal`; `stiffness: gram`: A = kappa B^T B / b, an energy), plus
   phi(x_s(t)) with `potentialInput: spikes`;
5. Langevin steps (second order: z_t = z + dt v, mu = (1-gamma)(v - dt f/m), v_t = mu + s eps;
   first order: mu = z - dt f, z_t = mu + s eps; `integrator: midpoint`: the implicit
   midpoint rule for the linear force through (I + cA)^-1), eps = the noise, or u_t with a
   per-step posterior, or 0 on the mean path;
6. decoder: S_t = [z_t, v_t, h_t] (or without v / without h), plus a sinusoidal positional
   encoding, through the one post-norm Transformer layer (or none: `linear`);
7. readout: optional bias-free `factors` bottleneck, Linear to log-rates, clamped to [-8, 8].

Deterministic mode (the mean path: posterior means, no noise, no dropout) is what `lflow-dist
predict --samples 0` and `lflow-dist inspect` compute. Stochastic prediction passes draw the
same keyed Philox noise as lflow-dist (see `noise.py`), so `predict(samples=N)` equals `lflow-dist
predict --samples N` as well.
"""

from __future__ import annotations

import json
import math
import os
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import Config
from .noise import prediction_noise

__all__ = ["LangevinFlow", "TransformerLayer", "KernelNormalizedLinear", "load_state_dict"]

LOG_VAR_MAX = 5.0
LOG_RATE_BOUND = 8.0


def _log_var_min(dtype) -> float:
    # PosteriorHead.logVarMin = S.log(1e-4), evaluated in the model's scalar type.
    if dtype == torch.float64:
        return math.log(1e-4)
    return float(np.log(np.float32(1e-4), dtype=np.float32))


def _round_bf16(x: torch.Tensor) -> torch.Tensor:
    """bfloat16 operand rounding (nearest even), back in the original dtype."""
    return x.to(torch.bfloat16).to(x.dtype)


class KernelNormalizedLinear(nn.Linear):
    """nn.Linear whose weight rows are scaled to unit L2 norm (floor 1e-12), lfads-torch's."""

    def normalized_weight(self) -> torch.Tensor:
        w = self.weight
        return w / w.norm(dim=1, keepdim=True).clamp(min=1e-12)

    def forward(self, x):
        return F.linear(x, self.normalized_weight(), self.bias)


class Potential(nn.Module):
    """`potential.conv_z` (G, G, K) and, with potentialInput spikes, `potential.layer_x`."""

    def __init__(self, config: Config, held_in: int):
        super().__init__()
        self.config = config
        g, k = config.groups, config.kernelSize
        self.conv_z = nn.Parameter(torch.zeros(g, g, k))
        if config.potentialInput == "spikes":
            h = config.hidden
            self.layer_x = nn.Sequential(KernelNormalizedLinear(held_in, h), nn.ReLU(), KernelNormalizedLinear(h, h))
        else:
            self.layer_x = None

    def normalized_kernel(self) -> torch.Tensor:
        w = self.conv_z
        return w / w.norm(dim=-1, keepdim=True).clamp(min=1e-8)

    def force_matrix(self) -> torch.Tensor:
        """A (H, H), symmetric, with f(z) = z A = dU/dz (CoupledOscillatorPotential.build)."""
        c = self.config
        g, k, l, pad = c.groups, c.kernelSize, c.group_length, c.kernelSize // 2
        w_hat = self.normalized_kernel()                          # (o, i, tap)
        if c.potential == "allPairs":
            blocks = w_hat.sum(dim=0, keepdim=True).expand(g, g, k)   # [j, i, tap] = sum_o W[o, i, tap]
        else:
            blocks = w_hat                                            # [j, i, tap] = W[j, i, tap]
        b = w_hat.new_zeros(c.hidden, c.hidden)
        for tap in range(k):
            # shift[pos, other] = 1 where other = pos + tap - pad lies inside the group
            shift = torch.from_numpy(np.eye(l, l, k=tap - pad)).to(dtype=w_hat.dtype, device=w_hat.device)
            b = b + torch.kron(blocks[:, :, tap], shift)
        if getattr(c, "stiffness", "paper") == "gram":
            # An energy: A = k B^T B / b_scale, positive semi-definite for k >= 0.
            taps = math.sqrt(min(k, 2 * max(l, 1) - 1))
            scale = (g * g if c.potential == "allPairs" else g) * taps
            return (c.coupling / scale) * (b.t() @ b)
        return c.coupling * (b + b.t())

    def drive(self, x: torch.Tensor, linear, input_scale: float = 1.0) -> torch.Tensor:
        """phi(input_scale x) for the observed bins (T, B, Nin) -> (T, B, H)."""
        first, _, second = self.layer_x
        a = torch.relu(linear(x, first.normalized_weight(), first.bias, input_scale))
        return linear(a, second.normalized_weight(), second.bias)


class SelfAttention(nn.Module):
    """The parameters of nn.MultiheadAttention (packed in_proj, out_proj) and its math."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.zeros(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)


class TransformerLayer(nn.Module):
    """Post-norm nn.TransformerEncoderLayer(D, heads, Fff, activation=relu) semantics over
    time-major (steps, B, D), no mask. Its state_dict loads into that PyTorch layer as well."""

    def __init__(self, width: int, heads: int, feed_forward: int, dropout: float):
        super().__init__()
        self.self_attn = SelfAttention(width, heads)
        self.linear1 = nn.Linear(width, feed_forward)
        self.linear2 = nn.Linear(feed_forward, width)
        self.norm1 = nn.LayerNorm(width, eps=1e-5)
        self.norm2 = nn.LayerNorm(width, eps=1e-5)
        self.dropout = dropout

    def run(self, x: torch.Tensor, linear, bf16: bool) -> torch.Tensor:
        steps, batch, d = x.shape
        heads = self.self_attn.heads
        dh = d // heads
        p = self.dropout if self.training else 0.0
        qkv = linear(x, self.self_attn.in_proj_weight, self.self_attn.in_proj_bias)     # (steps, B, 3D)
        q, k, v = qkv.split(d, dim=-1)

        def per_head(t):   # (steps, B, D) -> (B, heads, steps, dh)
            return t.reshape(steps, batch, heads, dh).permute(1, 2, 0, 3)

        q, k, v = per_head(q), per_head(k), per_head(v)
        if bf16:
            q, k, v = _round_bf16(q), _round_bf16(k), _round_bf16(v)
        scale = 1.0 / math.sqrt(dh) if x.dtype == torch.float64 else float(np.float32(1) / np.sqrt(np.float32(dh)))
        scores = torch.matmul(q, k.transpose(-1, -2)) * scale
        probs = torch.softmax(scores, dim=-1)
        probs = F.dropout(probs, p, self.training)
        if bf16:
            probs = _round_bf16(probs)
        context = torch.matmul(probs, v)                                              # (B, heads, steps, dh)
        context = context.permute(2, 0, 1, 3).reshape(steps, batch, d)
        attn = linear(context, self.self_attn.out_proj.weight, self.self_attn.out_proj.bias)
        x1 = self.norm1(x + F.dropout(attn, p, self.training))
        ff = F.dropout(torch.relu(linear(x1, self.linear1.weight, self.linear1.bias)), p, self.training)
        ff = linear(ff, self.linear2.weight, self.linear2.bias)
        return self.norm2(x1 + F.dropout(ff, p, self.training))


class LangevinFlow(nn.Module):
    """LangevinFlow with lflow-dist's parameter names (`state_dict()` == the checkpoint's
    `model/` group). Build it with `LangevinFlow.from_checkpoint(path)`, or
    `LangevinFlow(config, held_in, held_out)` for fresh (zero) parameters."""

    def __init__(self, config: Config, held_in: int, held_out: int, precision: Optional[str] = None):
        super().__init__()
        c = config
        c.validate()
        self.config = c
        self.held_in = held_in
        self.held_out = held_out
        #: "float32" or "bf16": bfloat16 operands (round to nearest even, float32 accumulation)
        #: of the products lflow-dist runs in bf16 with `precision: bf16`, on every CPU (GRU input
        #: projection, per-step posterior heads, the input potential, every Transformer product
        #: including the attention's scores and context, factors and readout); the recurrence,
        #: initial posterior and Langevin steps stay float32.
        self.precision = precision or "float32"
        h, d = c.hidden, c.decoder_width
        self.encoder = nn.GRUCell(held_in, h)
        self.encoder_reverse = nn.GRUCell(held_in, h) if c.encoder == "bidirectional" else None
        self.linear_z_means = nn.Linear(h, h)
        self.linear_z_logvar = nn.Linear(h, h)
        if c.second_order:
            self.linear_v_means = nn.Linear(h, h)
            self.linear_v_logvar = nn.Linear(h, h)
        if c.posterior == "perStep":
            self.linear_u_means = nn.Linear(h, h)
            self.linear_u_logvar = nn.Linear(h, h)
        self.potential = Potential(c, held_in)
        if c.decoder == "transformer":
            self.decoder = TransformerLayer(d, c.heads, c.feedForward, c.decoderDropout)
        else:
            self.decoder = None
        self.factors = nn.Linear(d, c.factors, bias=False) if c.factors > 0 else None
        self.readout = nn.Linear(c.factors if c.factors > 0 else d, held_in + held_out)
        #: The checkpoint's file and root attributes, when loaded from one.
        self.checkpoint_path: Optional[str] = None
        self.checkpoint_attributes: dict = {}

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_checkpoint(cls, path: str, group: Optional[str] = None, precision: Optional[str] = None,
                        dtype: torch.dtype = torch.float32) -> "LangevinFlow":
        """The model of an lflow-dist checkpoint (best.h5, last.h5, ckpt-*.h5 or init's).

        `group` picks the weights: by default `model/`, the ones `lflow-dist predict` uses (in
        best.h5 these are the best weights, the weight average's when `weightAverage` > 0; in
        a resumable ckpt-*.h5 they are the live weights). A resumable checkpoint also has
        `best_model` and, with a weight average, `weight_average`.
        `precision`: "auto" (default): what lflow-dist computes for this checkpoint, the
        config's precision (bf16 rounds the same operands on every CPU: on AVX512-BF16 or
        emulated, see `bf16_path`); "float32"; or "bf16", bfloat16 operands (round to nearest
        even, float32 accumulation) of the products lflow-dist runs in bf16 (see
        `LangevinFlow.precision`).
        `dtype`: torch.float32 (lflow-dist's prediction) or torch.float64 (`lflow-dist inspect`).
        """
        import h5py

        with h5py.File(path, "r") as f:
            if "config" not in f.attrs:
                raise ValueError(f"'{path}' has no `config` attribute: it is not an lflow-dist checkpoint")
            config = Config.from_json(_text(f.attrs["config"]))
            group = group or "model"
            if group not in f:
                raise ValueError(f"'{path}' has no group '{group}' (it has: {', '.join(sorted(f.keys()))})")
            tensors = {}
            f[group].visititems(lambda name, obj: tensors.__setitem__(name, np.asarray(obj)) if hasattr(obj, "shape") else None)
            sums = _text(f[group].attrs["checksums"]) if "checksums" in f[group].attrs else None
            attributes = {k: (_text(v) if isinstance(v, (bytes, str)) else v) for k, v in f.attrs.items()}
        held_in = tensors["encoder.weight_ih"].shape[1]
        held_out = tensors["readout.weight"].shape[0] - held_in
        if precision in (None, "auto"):
            # lflow-dist's float64 model (inspect) has no bf16 path; its float32 one has, on every CPU.
            precision = "bf16" if config.precision == "bf16" and dtype == torch.float32 else "float32"
        if precision not in ("float32", "bf16"):
            raise ValueError(f"precision must be auto, float32 or bf16, got '{precision}'")
        model = cls(config, held_in, held_out, precision=precision)
        load_state_dict(model, tensors, path=f"{path}:{group}", checksums=json.loads(sums) if sums else None)
        model.checkpoint_path = path
        model.checkpoint_attributes = attributes
        model.eval()
        return model.to(dtype)

    # ------------------------------------------------------------------ forward

    def _linear(self, bf16: bool):
        """linear(x, w, b=None, input_scale=1): nn.Linear of input_scale x. In float32 the
        scale is always 1 (lflow-dist folds it into x). In bf16 it multiplies the float32
        product of the rounded operands, before the bias: lflow-dist's coordinated dropout
        keeps 1/p out of the bf16 operands (`CoordinatedDropout.inputScale`)."""
        if not bf16:
            def linear(x, w, b=None, input_scale=1.0):
                assert input_scale == 1.0
                return F.linear(x, w, b)
            return linear

        def linear(x, w, b=None, input_scale=1.0):
            y = F.linear(_round_bf16(x), _round_bf16(w))
            if input_scale != 1.0:
                y = y * input_scale
            return y + b if b is not None else y
        return linear

    def _source(self, t: int, bins: int, reverse: bool) -> Optional[int]:
        """The observed bin the GRU reads at step t (GRUEncoder.source); None: no input."""
        lagged = self.config.encoderInput == "lagged"
        if reverse:
            s = t + 1 if lagged else t
            return s if s < bins else None
        return min(max(t - 1, 0), bins - 1) if lagged else min(t, bins - 1)

    def _gru(self, cell: nn.GRUCell, gates_in: torch.Tensor, steps: int, reverse: bool) -> torch.Tensor:
        bins, batch, _ = gates_in.shape
        h = self.config.hidden
        p = self.config.dropout if self.training else 0.0
        states = [None] * steps
        prev = None
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        for t in order:
            s = self._source(t, bins, reverse)
            gi = gates_in[s] if s is not None else cell.bias_ih.expand(batch, 3 * h)
            gh = F.linear(prev, cell.weight_hh, cell.bias_hh) if prev is not None else cell.bias_hh.expand(batch, 3 * h)
            r = 1 / (1 + torch.exp(-(gi[:, :h] + gh[:, :h])))
            z = 1 / (1 + torch.exp(-(gi[:, h:2 * h] + gh[:, h:2 * h])))
            n_pre = gi[:, 2 * h:] + r * gh[:, 2 * h:]
            n = 1 - 2 / (torch.exp(2 * n_pre) + 1)
            new = (1 - z) * n + z * prev if prev is not None else (1 - z) * n
            new = F.dropout(new, p, self.training)
            states[t] = new
            prev = new
        return torch.stack(states)

    def _head(self, name: str, h: torch.Tensor, linear):
        means, logvar = getattr(self, f"linear_{name}_means"), getattr(self, f"linear_{name}_logvar")
        mu = linear(h, means.weight, means.bias)
        lv = linear(h, logvar.weight, logvar.bias).clamp(_log_var_min(h.dtype), LOG_VAR_MAX)
        return mu, lv

    def _scalar(self, value: float, like: torch.Tensor) -> float:
        """A config constant as lflow-dist's scalar type holds it (S(value))."""
        return value if like.dtype == torch.float64 else float(np.float32(value))

    def run(self, spikes: torch.Tensor, forward_bins: int = 0, noise: Optional[dict] = None,
            input_scale: float = 1.0) -> dict:
        """One pass over a batch. `spikes`: held-in counts (B, T, Nin), NaN = missing.
        `noise`: None for the mean path, or the dict of `noise.prediction_noise` (time-major
        arrays eps_z, eps_v, eps_u or eps_langevin). Returns batch-first tensors: log_rates
        (B, T+F, Nout), latents S (B, T+F, D), z, v, h (B, T+F, H), the readout's input, and the posterior's
        mean / log variance of z_0 (and v_0, and of u_t for t >= 1 with a per-step posterior),
        and the force matrix A. `input_scale`: the encoder reads input_scale x (bf16 only:
        coordinated dropout's 1/p, applied after the products; see `_linear`)."""
        c = self.config
        dtype = self.readout.weight.dtype
        x = torch.as_tensor(spikes).to(dtype)
        if x.dim() != 3 or x.shape[2] != self.held_in:
            raise ValueError(f"spikes must be (trials, bins, {self.held_in}) held-in counts, got {tuple(x.shape)}")
        x = torch.nan_to_num(x, nan=0.0).transpose(0, 1).contiguous()          # (T, B, Nin)
        bins, batch = x.shape[0], x.shape[1]
        steps = bins + forward_bins
        bf16 = self.precision == "bf16"
        linear, linear32 = self._linear(bf16), F.linear
        h_dim = c.hidden

        def as_noise(key):
            return torch.as_tensor(noise[key]).to(dtype) if noise is not None and key in noise else None

        # Encoder
        states = self._gru(self.encoder, linear(x, self.encoder.weight_ih, self.encoder.bias_ih, input_scale), steps,
                           reverse=False)
        if self.encoder_reverse is not None:
            rev = self._gru(self.encoder_reverse,
                            linear(x, self.encoder_reverse.weight_ih, self.encoder_reverse.bias_ih, input_scale),
                            steps, reverse=True)
            states = states + rev
        h0 = states[0]
        out = {}
        # Initial posterior (float32 products: PosteriorHead's default precision)
        mu_z, lv_z = self._head("z", h0, linear32)
        eps_z = as_noise("eps_z")
        z = mu_z + torch.exp(lv_z / 2) * eps_z if eps_z is not None else mu_z
        out.update(mu_z=mu_z, logvar_z=lv_z)
        v = None
        if c.second_order:
            mu_v, lv_v = self._head("v", h0, linear32)
            eps_v = as_noise("eps_v")
            v = mu_v + torch.exp(lv_v / 2) * eps_v if eps_v is not None else mu_v
            out.update(mu_v=mu_v, logvar_v=lv_v)
        # Potential, drive, innovations
        a = self.potential.force_matrix()
        drive = self.potential.drive(x, linear, input_scale) if self.potential.layer_x is not None else None
        innovations = None
        if c.posterior == "perStep" and steps > 1:
            mu_u, lv_u = self._head("u", states[1:], linear)
            eps_u = as_noise("eps_u")
            innovations = mu_u + torch.exp(lv_u / 2) * eps_u if eps_u is not None else mu_u
            out.update(mu_u=mu_u.transpose(0, 1), logvar_u=lv_u.transpose(0, 1))
        eps_l = as_noise("eps_langevin")
        # Langevin steps
        dt, mass, damping = self._scalar(c.dt, x), self._scalar(c.mass, x), self._scalar(c.damping, x)
        one_minus_damping = 1 - damping if x.dtype == torch.float64 else float(np.float32(1) - np.float32(damping))
        if c.second_order:
            variance = 2 * c.damping * c.temperature
        else:
            variance = 2 * c.temperature * c.dt
        variance = self._scalar(variance, x)
        scale = math.sqrt(variance) if x.dtype == torch.float64 else float(np.sqrt(np.float32(variance)))
        transition_noise = variance > 0 and c.posterior != "perStep"
        def step_noise(t):
            """The noise of step t: the innovation, the Langevin draw, or none."""
            if innovations is not None:
                return innovations[t - 1]
            if eps_l is not None and transition_noise:
                return eps_l[t]
            return None

        midpoint = getattr(c, "integrator", "explicit") == "midpoint"
        if midpoint:
            # The implicit midpoint rule (first order: the trapezoid rule) through
            # M = (I + cA)^-1 and N = (I - cA) M, as LangevinDynamics.midpointForward.
            coefficient = c.dt * c.dt / (4 * c.mass) if c.second_order else c.dt / 2
            eye = torch.eye(a.shape[0], dtype=torch.float64, device=a.device)
            a64 = a.to(torch.float64)
            step_m = torch.linalg.inv(eye + coefficient * a64)
            step_n = ((eye - coefficient * a64) @ step_m).to(a.dtype)
            step_m = step_m.to(a.dtype)
        zs, vs, mus = [z], [v], []
        for t in range(1, steps):
            if midpoint:
                phi = drive[self._source(t, bins, reverse=False)] if drive is not None else None
                eps = step_noise(t)
                if c.second_order:
                    w = dt * v - (dt * dt / (2 * mass) * phi if phi is not None else 0)
                    z_new = torch.matmul(z, step_n) + torch.matmul(w, step_m)
                    f_bar = torch.matmul(z + z_new, a)
                    v_prime = v - dt / (2 * mass) * f_bar - (dt / mass * phi if phi is not None else 0)
                    mu = one_minus_damping * v_prime
                    v = mu + scale * eps if eps is not None else mu
                    z = z_new
                else:
                    mu = torch.matmul(z, step_n)
                    if phi is not None:
                        mu = mu - dt * torch.matmul(phi, step_m)
                    z = mu + scale * eps if eps is not None else mu
                zs.append(z)
                vs.append(v)
                mus.append(mu)
                continue
            f = torch.matmul(z, a)
            if drive is not None:
                f = f + drive[self._source(t, bins, reverse=False)]
            eps = step_noise(t)
            if c.second_order:
                z_new = z + dt * v
                mu = one_minus_damping * (v - dt * f / mass)
                v = mu + scale * eps if eps is not None else mu
                z = z_new
            else:
                mu = z - dt * f
                z = mu + scale * eps if eps is not None else mu
            zs.append(z)
            vs.append(v)
            mus.append(mu)
        zs = torch.stack(zs)
        parts = [zs]
        if c.second_order:
            vs = torch.stack(vs)
            parts.append(vs)
        if c.decoderInput == "zvh":
            parts.append(states)
        latents = torch.cat(parts, dim=-1)                                      # (steps, B, D)
        # Decoder
        y = latents
        if self.decoder is not None:
            if c.positionalEncoding == "sinusoidal":
                y = y + positional_encoding(steps, c.decoder_width).to(dtype).unsqueeze(1)
            y = self.decoder.run(y, linear, bf16)
        if self.factors is not None:
            y = linear(y, self.factors.weight)
        log_rates = linear(y, self.readout.weight, self.readout.bias).clamp(-LOG_RATE_BOUND, LOG_RATE_BOUND)
        out["readout_input"] = y.transpose(0, 1)                                # (B, T+F, factors or D)
        out.update(log_rates=log_rates.transpose(0, 1), latents=latents.transpose(0, 1), z=zs.transpose(0, 1),
                   h=states.transpose(0, 1), force_matrix=a,
                   transition_means=torch.stack(mus).transpose(0, 1) if mus else zs[:0].transpose(0, 1))
        out["kl"] = self._kl(out, variance, x)
        if c.second_order:
            out["v"] = vs.transpose(0, 1)
        return out

    def _kl(self, out: dict, variance: float, like: torch.Tensor) -> torch.Tensor:
        """The unweighted KL summed over the batch (PosteriorHead + LangevinDynamics): the
        initial z (and v) terms against N(0, 1), then either the per-step posterior's terms
        against N(0, 1) or the spec's transition terms KL(N(mu_t, s^2) || N(0, velocityPriorVar))."""
        def gaussian(mu, lv):
            return ((torch.exp(lv) + mu * mu - 1 - lv) / 2).sum()
        kl = gaussian(out["mu_z"], out["logvar_z"])
        if "mu_v" in out:
            kl = kl + gaussian(out["mu_v"], out["logvar_v"])
        if "mu_u" in out:
            kl = kl + gaussian(out["mu_u"], out["logvar_u"])
        elif variance > 0 and self.config.posterior != "perStep":
            prior = self._scalar(self.config.velocityPriorVar, like)
            ratio = self._scalar(variance / prior, like) if like.dtype != torch.float64 else variance / prior
            constant = ratio - 1 - math.log(ratio)
            mu = out["transition_means"]
            kl = kl + ((constant + mu * mu / prior) / 2).sum()
        return kl

    def elbo(self, spikes_heldin, spikes_heldout=None, heldin_forward=None, heldout_forward=None,
             kl_weight: Optional[float] = None) -> dict:
        """The negative ELBO of one batch (LangevinFlow.forward's loss), batch-first arrays:
        held-in (B, T, Nin), held-out (B, T, Nho), forward (B, F, Nin) and (B, F, Nho); NaN or
        a missing array = not observed (masked). `kl_weight` = beta (default the config's
        klWeight). Returns reconstruction (mean Poisson NLL exp(l) - y l over the observed
        entries), kl (divided by the trials, and with klScale perEntry also by (T+F) Nout) and
        total = reconstruction + beta kl, all differentiable.

        In eval() mode this is `lflow-dist inspect`'s deterministic loss (mean path, no
        dropout). In train() mode it is a training loss: coordinated dropout on the held-in
        input (keep probability cdKeep, gradient mask by cdGradient), dropout, posterior and
        Langevin samples, drawn from torch's generator (not lflow-dist's keyed streams)."""
        c = self.config
        dtype = self.readout.weight.dtype
        x = torch.as_tensor(spikes_heldin).to(dtype)
        batch, bins, nin = x.shape
        forward_bins = 0 if heldin_forward is None else int(np.shape(heldin_forward)[1])
        steps = bins + forward_bins
        nout = self.held_in + self.held_out

        def block(array, length, width):
            if array is None:
                return torch.full((batch, length, width), float("nan"), dtype=dtype)
            return torch.as_tensor(array).to(dtype)
        targets = torch.cat([
            torch.cat([x, block(spikes_heldout, bins, self.held_out)], dim=2),
            torch.cat([block(heldin_forward, forward_bins, nin), block(heldout_forward, forward_bins, self.held_out)], dim=2),
        ], dim=1)                                                               # (B, steps, Nout)
        observed = ~torch.isnan(targets)
        y = torch.nan_to_num(targets, nan=0.0)
        clean = torch.nan_to_num(x, nan=0.0)
        grad_mask = observed.clone()
        noise = None
        input_scale = 1.0
        if self.training:
            p = c.cdKeep
            if p < 1:
                kept = torch.rand_like(clean) < p
                passes = (torch.rand_like(clean) < 1 - p) if c.cdGradient == "spec" else torch.zeros_like(kept)
                if self.precision == "bf16":
                    # lflow-dist keeps the counts exact in bf16 and applies 1/p after the products.
                    clean = torch.where(kept, clean, torch.zeros_like(clean))
                    input_scale = float(np.float32(1) / np.float32(p))
                else:
                    clean = torch.where(kept, clean / p, torch.zeros_like(clean))
                grad_mask[:, :bins, :nin] &= ~(kept & ~passes)
            h = c.hidden
            noise = {"eps_z": torch.randn(batch, h, dtype=dtype)}
            if c.second_order:
                noise["eps_v"] = torch.randn(batch, h, dtype=dtype)
            if c.posterior == "perStep" and steps > 1:
                noise["eps_u"] = torch.randn(steps - 1, batch, h, dtype=dtype)
            else:
                noise["eps_langevin"] = torch.randn(steps, batch, h, dtype=dtype)
        out = self.run(clean, forward_bins, noise, input_scale)
        log_rates = out["log_rates"]
        g = grad_mask.to(dtype)
        used = log_rates * g + log_rates.detach() * (1 - g)     # the value everywhere, the gradient where g = 1
        nll = torch.where(observed, torch.exp(used) - y * used, torch.zeros_like(used)).sum()
        reconstruction = nll / max(int(observed.sum()), 1)
        divisor = batch * (steps * nout if c.klScale == "perEntry" else 1)
        kl = out["kl"] / divisor
        beta = c.klWeight if kl_weight is None else kl_weight
        return {"reconstruction": reconstruction, "kl": kl, "total": reconstruction + beta * kl, "log_rates": log_rates}

    def forward(self, spikes: torch.Tensor, forward_bins: int = 0, noise: Optional[dict] = None) -> torch.Tensor:
        """Log-rates (B, T+F, Nout) of held-in spikes (B, T, Nin): the mean path unless
        `noise` is given (see `run`)."""
        return self.run(spikes, forward_bins, noise)["log_rates"]

    # ------------------------------------------------------------------ prediction

    @torch.no_grad()
    def predict_rates(self, spikes, forward_bins: int = 0, samples: Optional[int] = None, seed: Optional[int] = None,
                      trial_keys=None, chunk: int = 64) -> np.ndarray:
        """Rates (n, T+F, Nout) in expected spikes per bin, as `lflow-dist predict` computes
        them: log-rates averaged over `samples` stochastic passes (posterior and Langevin noise,
        no dropout; keyed by (seed, pass, trial key)), then exponentiated; samples = 0: one
        mean-path pass. Defaults: the config's predictionSamples and seed; trial keys 0..n-1
        (lflow-dist keys eval trial i as n_train + i)."""
        c = self.config
        samples = c.predictionSamples if samples is None else int(samples)
        seed = c.seed if seed is None else int(seed)
        spikes = np.asarray(spikes)
        n = spikes.shape[0]
        keys = np.arange(n) if trial_keys is None else np.asarray(trial_keys)
        if len(keys) != n:
            raise ValueError(f"{len(keys)} trial keys for {n} trials")
        was_training = self.training
        self.eval()
        steps = spikes.shape[1] + forward_bins
        noise_dtype = np.float64 if self.readout.weight.dtype == torch.float64 else np.float32
        out = np.empty((n, steps, self.held_in + self.held_out), dtype=np.float32)
        try:
            for start in range(0, n, chunk):
                part = spikes[start:start + chunk]
                total = np.zeros((part.shape[0], steps, out.shape[2]), dtype=np.float64)
                for sample in range(max(samples, 1)):
                    noise = None
                    if samples > 0:
                        noise = prediction_noise(seed, sample, keys[start:start + chunk], c.hidden, steps,
                                                 second_order=c.second_order, per_step=c.posterior == "perStep",
                                                 langevin=True, dtype=noise_dtype)
                    total += self.forward(torch.from_numpy(np.ascontiguousarray(part)), forward_bins, noise).double().numpy()
                out[start:start + chunk] = np.exp(total / max(samples, 1)).astype(np.float32)
        finally:
            self.train(was_training)
        return out

    def predict(self, spikes_heldin, forward_bins: int = 0, samples: Optional[int] = None, seed: Optional[int] = None,
                trial_keys=None, chunk: int = 64) -> dict:
        """Rates of held-in spikes (n, T, Nin) in the NLB layout: `heldin` (n, T, Nin), `heldout`
        (n, T, Nho) and, with forward_bins F > 0, `heldin_forward` / `heldout_forward` (n, F, .).
        See `predict_rates` for samples, seed and trial keys. Given an NLB tensor file (its
        path, or the dict of `read_nlb`) instead, it is `predict_nlb`: the submission dict."""
        if isinstance(spikes_heldin, (str, bytes, dict)) or hasattr(spikes_heldin, "__fspath__"):
            return self.predict_nlb(spikes_heldin, samples=samples, seed=seed, chunk=chunk)
        rates = self.predict_rates(spikes_heldin, forward_bins, samples, seed, trial_keys, chunk)
        bins, nin = np.asarray(spikes_heldin).shape[1], self.held_in
        out = {"heldin": rates[:, :bins, :nin], "heldout": rates[:, :bins, nin:]}
        if forward_bins > 0:
            out["heldin_forward"] = rates[:, bins:, :nin]
            out["heldout_forward"] = rates[:, bins:, nin:]
        return out

    def predict_nlb(self, data, samples: Optional[int] = None, seed: Optional[int] = None, chunk: int = 64) -> dict:
        """The submission dict of `lflow-dist predict` for an NLB tensor file (path or the dict
        of `read_nlb`): train_rates_heldin/heldout for every training trial, eval_rates_heldin/
        heldout (and _forward with forward bins) for every eval trial. Noise keys: train trial i
        is i, eval trial i is n_train + i, as in lflow-dist."""
        from .data import read_nlb

        tensors = read_nlb(data) if isinstance(data, (str, bytes)) or hasattr(data, "__fspath__") else data
        train = tensors["train_spikes_heldin"]
        n_train, bins = train.shape[0], train.shape[1]
        fwd = tensors.get("train_spikes_heldin_forward")
        forward_bins = fwd.shape[1] if fwd is not None else 0
        out = {}
        rates = self.predict_rates(train, forward_bins, samples, seed, np.arange(n_train), chunk)
        out["train_rates_heldin"] = rates[:, :bins, :self.held_in]
        out["train_rates_heldout"] = rates[:, :bins, self.held_in:]
        evals = tensors.get("eval_spikes_heldin")
        if evals is not None and evals.shape[0] > 0:
            rates = self.predict_rates(evals, forward_bins, samples, seed, n_train + np.arange(evals.shape[0]), chunk)
            out["eval_rates_heldin"] = rates[:, :bins, :self.held_in]
            out["eval_rates_heldout"] = rates[:, :bins, self.held_in:]
            if forward_bins > 0:
                out["eval_rates_heldin_forward"] = rates[:, bins:, :self.held_in]
                out["eval_rates_heldout_forward"] = rates[:, bins:, self.held_in:]
        return {k: np.ascontiguousarray(v) for k, v in out.items()}


def bf16_path() -> str:
    """How lflow-dist's bf16 products run here (`OneDNN.bf16Path`): "hardware" on a CPU with
    AVX512-BF16 unless DNNL_MAX_CPU_ISA caps oneDNN below it, else "emulated". Both round the
    same operands; only the order of the float32 sums differs."""
    cap = os.environ.get("DNNL_MAX_CPU_ISA", "").strip().upper()
    capped = cap not in ("", "ALL", "AVX512_CORE_BF16", "AVX512_CORE_AMX", "AVX512_CORE_FP16", "AVX512_CORE_AMX_FP16")
    return "hardware" if cpu_has_avx512_bf16() and not capped else "emulated"


def cpu_has_avx512_bf16() -> bool:
    """Whether this CPU has the instructions of lflow-dist's hardware bf16 path
    (lf_cpu_has_avx512_bf16: AVX512F, AVX512BW and AVX512-BF16; Linux /proc/cpuinfo flags)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return {"avx512f", "avx512bw", "avx512_bf16"} <= flags
    except OSError:
        pass
    return False


def positional_encoding(steps: int, width: int) -> torch.Tensor:
    """PE[t, 2k] = sin(t 10000^(-2k/D)), PE[t, 2k+1] = cos(...), in float64 (steps, D)."""
    i = np.arange(width)
    frequency = np.exp(-np.log(10000.0) * (2 * (i // 2)) / width)
    angle = np.arange(steps)[:, None] * frequency[None, :]
    return torch.from_numpy(np.where(i % 2 == 0, np.sin(angle), np.cos(angle)))


def load_state_dict(model: nn.Module, tensors: dict, path: str = "checkpoint", checksums: Optional[dict] = None):
    """Loads `{name: array}` into `model`, refusing missing, extra or misshapen tensors, as
    lflow-dist's CheckpointIO.read does (checksums are checked when given and when lflow-dist's
    Digest64 is known: see `digest64`)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        raise ValueError(f"'{path}': the tensors do not match the model built from its config "
                         f"(missing: {missing or 'none'}; not in the model: {extra or 'none'})")
    converted = {}
    for name, value in tensors.items():
        if tuple(value.shape) != tuple(own[name].shape):
            raise ValueError(f"'{path}': {name} is {tuple(value.shape)} in the file but {tuple(own[name].shape)} in the model")
        converted[name] = torch.from_numpy(np.asarray(value, dtype=np.float32).copy())
    model.load_state_dict(converted, strict=True)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
