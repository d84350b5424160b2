"""A small importable torch module for the state-dict flavor tests."""

from __future__ import annotations

import torch


class TinyNet(torch.nn.Module):
    def __init__(self, width: int = 3, hidden: int = 4) -> None:
        super().__init__()
        self.init_kwargs = {"width": width, "hidden": hidden}
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(width, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layers(x)
        return out
