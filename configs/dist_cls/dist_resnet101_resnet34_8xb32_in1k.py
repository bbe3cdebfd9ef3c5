# DIST with a stronger teacher on ImageNet-1k: ResNet-34 student, ResNet-101 teacher
# (mmpretrain's checkpoint, 77.97 top-1; the paper's torchvision teacher had 77.37).
# Paper: 73.31 (baseline) -> 74.89 with KD (tau 4) -> 75.36 with DIST; mmpretrain's own
# ResNet-34 baseline is 73.62.
# Recipe, DIST weight and optimiser: the official ones, from the base config.
_base_ = ['./dist_resnet50_resnet34_8xb32_in1k.py']

teacher_ckpt = 'https://download.openmmlab.com/mmclassification/v0/resnet/resnet101_8xb32_in1k_20210831-539c63f8.pth'  # noqa: E501
model = dict(
    teacher_cfg='mmpretrain::resnet/resnet101_8xb32_in1k.py', teacher_ckpt=teacher_ckpt)
