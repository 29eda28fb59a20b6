"""ShortGPT's block influence against a hand computation on blocks with known effects."""

from __future__ import annotations

import pytest
import torch

from distill.models.block_influence import block_influence, most_influential


class _Negate(torch.nn.Module):
    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return -hidden_states


class _Rotate(torch.nn.Module):
    """90 degrees in the plane of the first two features: each state turns orthogonal."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.stack([-hidden_states[..., 1], hidden_states[..., 0]], dim=-1)


class _FlipLastPosition(torch.nn.Module):
    """Negates only the last position: counted only where the attention mask is 1."""

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor]:
        sign = torch.ones_like(hidden_states)
        sign[:, -1] = -1
        return (hidden_states * sign,)  # decoder blocks may return a tuple


class _Stack(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(5, 2)
        torch.nn.init.uniform_(self.embed.weight, 0.5, 1.0)  # no zero vectors
        self.layers = torch.nn.ModuleList(
            [torch.nn.Identity(), _Negate(), _Rotate(), _FlipLastPosition()]
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.embed(input_ids)
        for layer in self.layers:
            out = layer(hidden)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden


def test_influence_is_one_minus_the_cosine_of_input_and_output_over_real_tokens() -> None:
    model = _Stack().train()
    batch = {
        "input_ids": torch.tensor([[1, 2], [3, 4]]),
        "attention_mask": torch.tensor([[1, 1], [1, 0]]),
    }
    influence = block_influence(model, [batch])
    # identity: cosine 1; negation: -1; rotation: 0; the last-position flip: 2 on one of the
    # three real tokens (the padded last position of row 2 is not counted)
    assert influence == pytest.approx([0.0, 2.0, 1.0, 2 / 3], abs=1e-6)
    assert model.training  # put back as it was
    assert most_influential(influence, 2) == [1, 2]  # in block order
    assert most_influential(influence, 3) == [1, 2, 3]
    assert most_influential([1.0, 1.0, 0.0], 1) == [0]  # a tie keeps the earlier block
