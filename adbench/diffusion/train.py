"""Train a noise net on cached features with the DDPM epsilon objective (Eq. 4).

The defaults are the official InvAD code's (``train.py``, ``train_distributed.py``): AdamW (weight decay 0),
the learning rate rising linearly from ``lr_start`` at the first step to ``lr`` after ``warmup_epochs``,
then cosine-decaying to ``lr_end`` (1e-6 -> 5e-5 over 40 epochs -> 1e-6), gradient clipping at 1.0, batch 64,
300 epochs, an epoch's last incomplete batch dropped (``drop_last``), fp32 (``precision``; bf16 autocast on
CUDA is an option), and an exponential moving average (EMA) of the weights with decay 0.999 updated every
step (``ema_warmup`` uses min(ema_decay, (1 + step) / (10 + step)) instead, so that short runs are not
dominated by the initialisation). One seeded generator draws timesteps and noise, on the host by default
(the same stream on every device) or on the training device (``noise_on``); each epoch is a seeded
shuffle. On several processes (``adbench.diffusion.parallel``) each trains on its share of the same global
batch. Checkpoints (model, EMA, optimizer, scheduler, step, generator state, losses) are written atomically
every ``checkpoint_every`` steps; training resumes from one exactly where it stopped.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from adbench.atomic import atomic_torch_save, load_cached
from adbench.config import TrainConfig
from adbench.device import autocast, to_device
from adbench.diffusion.parallel import World, full_state, load_state, prepare, summed_over
from adbench.diffusion.schedule import Schedule
from adbench.errors import AdbenchError
from adbench.progress import make_console, progress_bar


def training_schedule(cfg: TrainConfig) -> Schedule:
    """The noise schedule the net is trained with, and every scorer of it must use."""
    return Schedule.linear(cfg.timesteps)


def steps_per_epoch(n_images: int, cfg: TrainConfig) -> int:
    """Optimisation steps an epoch: whole global batches (``drop_last``, the official loaders') or every image."""
    steps = n_images // cfg.batch_size if cfg.drop_last else math.ceil(n_images / cfg.batch_size)
    if steps == 0:
        raise AdbenchError(f"{n_images} training images do not fill one batch of train.batch_size "
                           f"{cfg.batch_size}, and train.drop_last drops an incomplete batch (as the official "
                           f"code): set train.batch_size to at most {n_images}, or train.drop_last=false")
    return steps


def lr_factor(step: int, warmup: int, total: int, start: float = 0.0, end: float = 0.0) -> float:
    """The learning rate over the peak at optimisation step ``step`` (0-based): linear warm-up from ``start``
    at step 0 to 1 at step ``warmup``, then cosine decay to ``end`` at ``total``; ``start`` and ``end`` are
    fractions of the peak (the official ``WarmupCosineAnnealingScheduler``)."""
    if step < warmup:
        return start + (1 - start) * step / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def ema_decay(decay: float, warmup: bool, step: int) -> float:
    """The EMA decay at ``step``: ``decay``, or min(decay, (1 + step) / (10 + step)) with ``warmup``."""
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


def training_log(cfg: TrainConfig, losses: list[float], n_images: int) -> list[dict[str, float]]:
    """One row per step of a finished training: step, epoch, loss, learning rate and EMA decay (the values
    ``train_noise_net`` used on ``n_images`` training features)."""
    per_epoch = steps_per_epoch(n_images, cfg)
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
    noise) under ``cfg.precision`` autocast (through ``torch.compile`` with ``compile_model``, static shapes),
    backward (gradients averaged over the ``world``'s ranks), gradient clipping, AdamW (fused on CUDA), the
    learning-rate schedule and the EMA update (of this rank's weights, outside DDP)."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, device: torch.device, total: int, warmup: int,
                 compile_model: bool = False, world: World | None = None) -> None:
        self.model, self.cfg, self.device, self.world = model, cfg, device, world
        net = prepare(model, cfg.strategy, cfg.activation_checkpointing, world, device)
        self.net = torch.compile(net, dynamic=False) if compile_model else net
        self.schedule = training_schedule(cfg)
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                     fused=device.type == "cuda")
        start, end = cfg.lr_start / cfg.lr, cfg.lr_end / cfg.lr
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(s, warmup, total, start, end))
        self.ema = EMA(model, cfg.ema_decay, cfg.ema_warmup)

    def __call__(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, step: int,
                 part: float = 1.0) -> torch.Tensor:
        """The step's loss, left on the device. ``part``: this rank's share of the global batch times the
        world size (1 when the batch splits evenly), so that averaging the ranks' gradients gives the
        gradient of the global batch's mean loss; the loss returned is this rank's term of that mean."""
        x_t = self.schedule.q_sample(x0, t, noise)
        with autocast(self.device, self.cfg.precision):
            pred = self.net(x_t, t)
        loss = torch.nn.functional.mse_loss(pred.float(), noise) * part
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        self.ema.update(self.model, step)
        return loss.detach() / (self.world.size if self.world else 1)


def train_noise_net(model: nn.Module, features: torch.Tensor, cfg: TrainConfig, seed: int,
                    checkpoint: Path | None = None, device: torch.device | str = "cpu",
                    description: str = "train", compile_model: bool = False,
                    world: World | None = None) -> tuple[list[float], dict[str, torch.Tensor]]:
    """Train ``model`` in place on ``features`` (N x C x h x w) under ``cfg.precision`` autocast (CUDA only);
    return every step's loss and the EMA state. ``compile_model``: its forward and backward passes through
    ``torch.compile`` (static shapes: the full batch and an epoch's last one). In a ``world`` every rank calls
    it with the same features, seed and config and trains on its share of each global batch; rank 0 alone
    writes the checkpoint, which holds the full states (the EMA state returned is this rank's, sharded under
    FSDP)."""
    device = torch.device(device)
    model.to(device).train()
    per_epoch = steps_per_epoch(len(features), cfg)
    total = cfg.epochs * per_epoch
    train_step = TrainingStep(model, cfg, device, total, cfg.warmup_epochs * per_epoch, compile_model, world)
    opt, sched, ema = train_step.opt, train_step.sched, train_step.ema
    gen = torch.Generator(device if cfg.noise_on == "device" else "cpu").manual_seed(seed)
    step, losses, order = 0, [], None
    features = features_on(device, features)
    pending: list[torch.Tensor] = []  # this step's losses, still on the device
    lead = world is None or world.rank == 0
    state = load_cached(checkpoint, "training checkpoint") if checkpoint is not None and lead else None
    state = load_state(model, opt, state, world)  # damaged or missing: start over; rank 0's on every rank
    if state is not None:
        ema.state, rest = state
        sched.load_state_dict(rest["scheduler"])
        saved_on = rest.get("generator_device", "cpu")
        if saved_on != gen.device.type:
            raise AdbenchError(f"training checkpoint {checkpoint} drew its noise on {saved_on}, here it would be "
                               f"{gen.device.type}: the stream cannot continue; resume on {saved_on}, or delete the "
                               "file to train from the start")
        gen.set_state(rest["generator"])
        step, losses = rest["step"], rest["losses"]
        if lead:
            make_console().print(f"{description}: resumed at step {step} of {total} (checkpoint {checkpoint}, "
                                 f"written by {rest.get('world_size', 1)} process(es))", soft_wrap=True)

    def flush() -> None:  # one host sync (and one all-reduce) for many steps
        if pending:
            losses.extend(summed_over(torch.stack(pending), world).tolist())
            pending.clear()
            bar.update(task, description=f"{description} loss {losses[-1]:.4f}")

    def save() -> None:
        flush()
        if checkpoint is None:
            return
        weights, optimizer, averaged = full_state(model, opt, ema.state, world)  # a collective in a world
        if lead:
            atomic_torch_save(dict(model=weights, ema=averaged, optimizer=optimizer, scheduler=sched.state_dict(),
                                   generator=gen.get_state(), generator_device=gen.device.type,
                                   step=step, losses=losses, world_size=world.size if world else 1), checkpoint)

    with progress_bar(shown=lead) as bar:
        task = bar.add_task(description, total=total, completed=step)
        while step < total:
            if order is None or step % per_epoch == 0:  # per-epoch shuffle, resumable
                epoch_gen = torch.Generator().manual_seed(seed * 1_000_003 + step // per_epoch)
                order = torch.randperm(len(features), generator=epoch_gen).to(features.device)
            batch = order[(step % per_epoch) * cfg.batch_size:][: cfg.batch_size]
            # the global batch's timesteps and noise from the one generator (host or device), on every rank
            t = torch.randint(0, cfg.timesteps, (len(batch),), generator=gen, device=gen.device)
            noise = torch.randn((len(batch), *features.shape[1:]), generator=gen, device=gen.device)
            part = 1.0
            if world is not None:  # this rank's share of it
                mine, n = world.share(len(batch)), len(batch)
                batch, t, noise = batch[mine], t[mine], noise[mine]
                part = len(batch) * world.size / n
            x0 = to_device(features[batch], device)
            pending.append(train_step(x0, to_device(t, device), to_device(noise, device), step, part))
            step += 1
            bar.update(task, advance=1)
            if step % LOG_EVERY == 0:
                flush()
            if step % cfg.checkpoint_every == 0 or step == total:
                save()
    model.eval()
    return losses, ema.state
