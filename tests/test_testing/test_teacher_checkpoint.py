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
