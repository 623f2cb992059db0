"""Loss exported by ncpc from `loss` (canonical IR hash d038b7b617a003b1f7c52ef9a01df843).

Forward: `loss = DiscoveredLoss()(y_pred, y_true)`, with y_pred and y_true float tensors of
shape [B, C]. Gradients come from autograd; ncpc's IR follows PyTorch's conventions, but
ties of max/min and clamp bounds can differ in the gradient at exact ties.
"""
import torch


class DiscoveredLoss(torch.nn.Module):
    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        t1 = y_pred - y_true - y_true
        return torch.pow((torch.tensor(0.0) - torch.tensor(1.0227859) * t1 * torch.tensor(-48.68477) / torch.tensor(1.15874855e-5) * torch.tensor(0.75104845)) * (torch.tanh(t1) - torch.tensor(1.1487486e-5)) - torch.tensor(1.1487486e-5) - torch.tensor(1.1487486e-5), torch.tensor(2.0)).mean()
