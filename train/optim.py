"""Lion optimizer and the one-cycle cosine schedule of the paper's recipe (``reference/paper.md`` §1.6, DESIGN §5).

Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), per parameter p with gradient g:
    update = sign(beta1 * m + (1 - beta1) * g)
    p <- p * (1 - lr * weight_decay) - lr * update          (decoupled weight decay)
    m <- beta2 * m + (1 - beta2) * g
Betas (0.9, 0.95) and weight decay 0.05 are fixed (no momentum cycling).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.lr_scheduler import OneCycleLR


class Lion(torch.optim.Optimizer):
    """Lion with decoupled weight decay; state is one momentum buffer per parameter (half of AdamW's)."""

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0):
        if lr <= 0:
            raise ValueError(f"Lion learning rate must be positive, got {lr}")
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"Lion betas must be in [0, 1), got {betas}")
        if weight_decay < 0:
            raise ValueError(f"Lion weight decay must be non-negative, got {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, weight_decay = group["lr"], group["weight_decay"]
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                grad = parameter.grad
                state = self.state[parameter]
                if "exp_avg" not in state:
                    state["exp_avg"] = torch.zeros_like(parameter)
                momentum = state["exp_avg"]
                if weight_decay:
                    parameter.mul_(1.0 - lr * weight_decay)
                update = momentum.mul(beta1).add_(grad, alpha=1.0 - beta1).sign_()
                parameter.add_(update, alpha=-lr)
                momentum.mul_(beta2).add_(grad, alpha=1.0 - beta2)
        return loss


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only: biases, norms, LayerScale gammas and learned tokens are not decayed (MAE)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if parameter.ndim < 2 or "token" in name:
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    return [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)]


def one_cycle_schedule(
    optimizer: torch.optim.Optimizer,
    peak_lr: float,
    total_steps: int,
    warmup_fraction: float = 0.1,
    initial_lr_divisor: float = 25.0,
    final_lr_divisor: float = 1e4,
) -> OneCycleLR:
    """Cosine warm-up from `peak_lr / initial_lr_divisor` to `peak_lr` over `warmup_fraction` of the steps, then
    cosine decay to `peak_lr / final_lr_divisor` (torch OneCycleLR with fixed betas; one step per optimizer step)."""
    return OneCycleLR(
        optimizer,
        max_lr=peak_lr,
        total_steps=max(total_steps, 2),
        pct_start=warmup_fraction,
        anneal_strategy="cos",
        cycle_momentum=False,
        div_factor=initial_lr_divisor,
        final_div_factor=final_lr_divisor / initial_lr_divisor,
    )


__all__ = ["Lion", "one_cycle_schedule", "parameter_groups"]
