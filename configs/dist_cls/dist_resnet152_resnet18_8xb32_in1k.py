# DIST with a stronger teacher on ImageNet-1k: ResNet-18 student, ResNet-152 teacher
# (mmpretrain's checkpoint, 78.48 top-1; the paper's torchvision teacher had 78.31).
# Paper: 69.76 (baseline) -> 71.12 with KD (tau 4) -> 72.24 with DIST; mmpretrain's own
# ResNet-18 baseline is 69.90.
# Recipe, DIST weight and optimiser: the official ones, from the base config.
_base_ = ['./dist_resnet34_resnet18_8xb32_in1k.py']

teacher_ckpt = 'https://download.openmmlab.com/mmclassification/v0/resnet/resnet152_8xb32_in1k_20210901-4d7582fa.pth'  # noqa: E501
model = dict(
    teacher_cfg='mmpretrain::resnet/resnet152_8xb32_in1k.py', teacher_ckpt=teacher_ckpt)
