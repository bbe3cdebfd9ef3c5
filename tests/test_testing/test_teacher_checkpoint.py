# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The tests' teacher checkpoints (mmdist.testing.save_teacher_checkpoint)."""
import torch

from mmdist.testing._detection import write_detr_configs


def test_pytorch_init_teacher_has_no_uninitialised_parameters(tmp_path, coco_root):
    """``init_weights=False`` keeps PyTorch's initialisation of the layers, but DINO's
    ``level_embed`` is created with ``torch.Tensor(levels, dims)`` (uninitialised memory,
    at times NaN) and only DINO's ``init_weights`` draws it (``normal_``)."""
    paths = write_detr_configs(str(tmp_path), coco_root, 'dino')  # teacher_init=False
    state = torch.load(paths['teacher_ckpt'], map_location='cpu',
                       weights_only=True)['state_dict']
    level_embed = state['level_embed']  # (5, 256)
    assert level_embed.shape == (5, 256) and torch.isfinite(level_embed).all()
    assert abs(level_embed.mean().item()) < 0.1 and abs(level_embed.std().item() - 1) < 0.1
    # The layers keep PyTorch's initialisation: the class biases differ from class to class
    # (mmdet's init sets them all to the focal-loss prior, -4.595).
    bias = state['bbox_head.cls_branches.0.bias']
    assert bias.std() > 0 and not torch.allclose(bias, torch.full_like(bias, -4.595), atol=1e-2)


def test_init_of_unowned_parameters_keeps_every_pytorch_layer():
    """Only parameters no layer with ``reset_parameters`` owns are drawn by
    ``init_weights``; the layers keep the values they were built with."""
    from torch import nn

    from mmdist.testing import init_weights_of_unowned_parameters

    class Model(nn.Module):

        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 2)
            self.embed = nn.Parameter(torch.zeros(4, 3))  # owned by no PyTorch layer

        def init_weights(self):
            nn.init.constant_(self.linear.weight, 5.0)
            nn.init.constant_(self.embed, 7.0)

    model = Model()
    linear = {k: v.clone() for k, v in model.linear.state_dict().items()}
    init_weights_of_unowned_parameters(model)
    assert all(torch.equal(v, model.linear.state_dict()[k]) for k, v in linear.items())
    assert torch.equal(model.embed, torch.full((4, 3), 7.0))
