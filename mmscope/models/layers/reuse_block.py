"""Feature-reuse block that carries coarse-stage features to fine tokens."""
import torch
from torch import nn


class ReuseBlock(nn.Module):
    """LayerNorm followed by an MLP ``C -> hidden -> C`` with GELU.

    Args:
        embed_dims: Token width C.
        mlp_ratio: Hidden width as a multiple of C.
    """

    def __init__(self, embed_dims: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        hidden = embed_dims * mlp_ratio
        self.norm = nn.LayerNorm(embed_dims)
        self.fc1 = nn.Linear(embed_dims, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, embed_dims)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Map tokens (batch, L, C) to reuse terms of the same shape."""
        return self.fc2(self.act(self.fc1(self.norm(tokens))))
