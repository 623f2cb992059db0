"""Loss exported by ncpc from `loss` (canonical IR hash 611c9dd97aff0b8fc1b23547003b04f4).

Forward: `loss = DiscoveredLoss()(y_pred, y_true)`, with y_pred and y_true float tensors of
shape [B, C]. Gradients come from autograd; ncpc's IR follows PyTorch's conventions, but
ties of max/min and clamp bounds can differ in the gradient at exact ties.
"""
import torch


class DiscoveredLoss(torch.nn.Module):
    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return torch.pow(torch.maximum((y_true + torch.tensor(0.0)) * y_pred, y_pred) - y_true - y_true, torch.tensor(2.0)).mean()
