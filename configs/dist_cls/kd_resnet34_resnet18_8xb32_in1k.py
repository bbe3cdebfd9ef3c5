# Hinton KD baseline of the paper on ImageNet-1k: ResNet-18 student, ResNet-34 teacher,
# KL divergence at temperature 4 (scaled by tau^2) on top of the student's cross-entropy.
# Paper: 69.76 (baseline) -> 71.21 with KD (DIST: 72.07, see dist_resnet34_resnet18_*).
_base_ = ['./dist_resnet34_resnet18_8xb32_in1k.py']

model = dict(loss_cls=dict(_delete_=True, type='mmdist.KDLoss', tau=4.0, loss_weight=1.0))
