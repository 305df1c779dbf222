"""Train a noise net on cached features with the DDPM epsilon objective (Eq. 4).

The defaults are the official InvAD code's: AdamW (weight decay 0), the learning rate rising
linearly from ``lr_start`` to ``lr`` over ``warmup_epochs`` then cosine-decaying to ``lr_end``
(1e-6 -> 5e-5 over 40 epochs -> 1e-6), gradient clipping at 1.0, batch 64, 300 epochs, and an
exponential moving average (EMA) of the weights with decay 0.999 updated every step
(``ema_warmup`` uses min(ema_decay, (1 + step) / (10 + step)) instead, so that short runs are not
dominated by the initialisation). One seeded generator draws timesteps and noise, on the host by
default (the same stream on every device) or on the training device (``noise_on``); each epoch is a
seeded shuffle. On CUDA the forward pass runs under bf16 autocast (``precision``). Checkpoints (model, EMA,
optimizer, scheduler, step, generator state, losses) are written atomically every
``checkpoint_every`` steps; training resumes from one exactly where it stopped.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from adbench.atomic import atomic_torch_save, load_cached
from adbench.config import TrainConfig
from adbench.device import autocast, to_device
from adbench.diffusion.schedule import Schedule
from adbench.errors import AdbenchError
from adbench.progress import progress_bar


def training_schedule(cfg: TrainConfig) -> Schedule:
    """The noise schedule the net is trained with, and every scorer of it must use."""
    return Schedule.linear(cfg.timesteps)


def lr_factor(step: int, warmup: int, total: int, start: float = 0.0, end: float = 0.0) -> float:
    """The learning rate over the peak: linear warm-up from ``start`` (reaching 1 at step ``warmup`` - 1),
    then cosine decay to ``end`` at ``total``; ``start`` and ``end`` are fractions of the peak."""
    if step < warmup:
        return start + (1 - start) * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def ema_decay(decay: float, warmup: bool, step: int) -> float:
    """The EMA decay at ``step``: ``decay``, or min(decay, (1 + step) / (10 + step)) with ``warmup``."""
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


def training_log(cfg: TrainConfig, losses: list[float], n_images: int) -> list[dict[str, float]]:
    """One row per step of a finished training: step, epoch, loss, learning rate and EMA decay (the values
    ``train_noise_net`` used on ``n_images`` training features)."""
    per_epoch = math.ceil(n_images / cfg.batch_size)
    warmup, total = cfg.warmup_epochs * per_epoch, cfg.epochs * per_epoch
    start, end = cfg.lr_start / cfg.lr, cfg.lr_end / cfg.lr
    return [{"step": s, "epoch": s // per_epoch, "loss": loss, "lr": cfg.lr * lr_factor(s, warmup, total, start, end),
             "ema_decay": ema_decay(cfg.ema_decay, cfg.ema_warmup, s)} for s, loss in enumerate(losses)]


class EMA:
    """Exponential moving average of a model's floating-point state."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = False) -> None:
        self.decay, self.warmup = decay, warmup
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = ema_decay(self.decay, self.warmup, step)
        current = model.state_dict()
        floats = [k for k, v in current.items() if v.is_floating_point()]
        averaged = [self.state[k] for k in floats]
        torch._foreach_mul_(averaged, d)  # one fused launch per op, not one per tensor
        torch._foreach_add_(averaged, [current[k].detach() for k in floats], alpha=1 - d)
        for k, v in current.items():
            if not v.is_floating_point():
                self.state[k].copy_(v)


LOG_EVERY = 25  # steps between reading losses back from the device


def features_on(device: torch.device, features: torch.Tensor) -> torch.Tensor:
    """The training features on ``device`` when they take under a quarter of its free memory (no
    per-step host-to-device copies), else left on the host."""
    if device.type == "cuda" and features.numel() * features.element_size() < torch.cuda.mem_get_info(device)[0] / 4:
        return features.to(device)
    return features


class TrainingStep:
    """One optimisation step of ``train_noise_net``: the epsilon loss of ``model`` on x_t = q_sample(x0, t,
    noise) under ``precision`` autocast (through ``torch.compile`` with ``compile_model``, static shapes),
    backward, gradient clipping, AdamW (fused on CUDA), the learning-rate schedule and the EMA update."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, device: torch.device, total: int, warmup: int,
                 precision: str = "bf16", compile_model: bool = False) -> None:
        self.model, self.cfg, self.device, self.precision = model, cfg, device, precision
        self.net = torch.compile(model, dynamic=False) if compile_model else model
        self.schedule = training_schedule(cfg)
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                     fused=device.type == "cuda")
        start, end = cfg.lr_start / cfg.lr, cfg.lr_end / cfg.lr
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(s, warmup, total, start, end))
        self.ema = EMA(model, cfg.ema_decay, cfg.ema_warmup)

    def __call__(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, step: int) -> torch.Tensor:
        """The step's loss, left on the device."""
        x_t = self.schedule.q_sample(x0, t, noise)
        with autocast(self.device, self.precision):
            pred = self.net(x_t, t)
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        self.ema.update(self.model, step)
        return loss.detach()


def train_noise_net(model: nn.Module, features: torch.Tensor, cfg: TrainConfig, seed: int,
                    checkpoint: Path | None = None, device: torch.device | str = "cpu",
                    description: str = "train", precision: str = "bf16",
                    compile_model: bool = False) -> tuple[list[float], dict[str, torch.Tensor]]:
    """Train ``model`` in place on ``features`` (N x C x h x w) under ``precision`` autocast (CUDA only);
    return every step's loss and the EMA state. ``compile_model``: its forward and backward passes through
    ``torch.compile`` (static shapes: the full batch and an epoch's last one)."""
    device = torch.device(device)
    model.to(device).train()
    steps_per_epoch = math.ceil(len(features) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    train_step = TrainingStep(model, cfg, device, total, cfg.warmup_epochs * steps_per_epoch, precision, compile_model)
    opt, sched, ema = train_step.opt, train_step.sched, train_step.ema
    gen = torch.Generator(device if cfg.noise_on == "device" else "cpu").manual_seed(seed)
    step, losses, order = 0, [], None
    features = features_on(device, features)
    pending: list[torch.Tensor] = []  # this step's losses, still on the device
    state = None if checkpoint is None else load_cached(checkpoint, "training checkpoint")  # damaged: start over
    if state is not None:
        model.load_state_dict(state["model"])
        ema.state = {k: v.to(device) for k, v in state["ema"].items()}
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        saved_on = state.get("generator_device", "cpu")
        if saved_on != gen.device.type:
            raise AdbenchError(f"training checkpoint {checkpoint} drew its noise on {saved_on}, here it would be "
                               f"{gen.device.type}: the stream cannot continue; resume on {saved_on}, or delete the "
                               "file to train from the start")
        gen.set_state(state["generator"])
        step, losses = state["step"], state["losses"]

    def flush() -> None:  # one host sync for many steps
        if pending:
            losses.extend(torch.stack(pending).tolist())
            pending.clear()
            bar.update(task, description=f"{description} loss {losses[-1]:.4f}")

    def save() -> None:
        flush()
        if checkpoint is not None:
            atomic_torch_save(dict(model=model.state_dict(), ema=ema.state, optimizer=opt.state_dict(),
                                   scheduler=sched.state_dict(), generator=gen.get_state(),
                                   generator_device=gen.device.type,
                                   step=step, losses=losses), checkpoint)

    with progress_bar() as bar:
        task = bar.add_task(description, total=total, completed=step)
        while step < total:
            if order is None or step % steps_per_epoch == 0:  # per-epoch shuffle, resumable
                epoch_gen = torch.Generator().manual_seed(seed * 1_000_003 + step // steps_per_epoch)
                order = torch.randperm(len(features), generator=epoch_gen).to(features.device)
            idx = order[(step % steps_per_epoch) * cfg.batch_size:][: cfg.batch_size]
            x0 = to_device(features[idx], device)
            # timesteps and noise from the one generator (host or device), copied to the device if needed
            t = to_device(torch.randint(0, cfg.timesteps, (len(idx),), generator=gen, device=gen.device), device)
            noise = to_device(torch.randn(x0.shape, generator=gen, device=gen.device), device)
            pending.append(train_step(x0, t, noise, step))
            step += 1
            bar.update(task, advance=1)
            if step % LOG_EVERY == 0:
                flush()
            if step % cfg.checkpoint_every == 0 or step == total:
                save()
    model.eval()
    return losses, ema.state
