"""Loss exported by ncpc from `loss` (canonical IR hash cc58f3de2fe7fb662974cc90bd3acde9).

Forward: `loss = DiscoveredLoss()(y_pred, y_true)`, with y_pred and y_true float tensors of
shape [B, C]. Gradients come from autograd; ncpc's IR follows PyTorch's conventions, but
ties of max/min and clamp bounds can differ in the gradient at exact ties.
"""
import torch


class DiscoveredLoss(torch.nn.Module):
    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.maximum(torch.pow(y_pred - torch.where((y_true >= (torch.tensor(0.0) >= y_pred).to(torch.float32)), y_true, y_pred), torch.tensor(2.0)).mean(), torch.tensor(1e-7)))
