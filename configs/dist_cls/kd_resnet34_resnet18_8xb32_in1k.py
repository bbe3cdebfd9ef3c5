# Hinton KD baseline of the paper on ImageNet-1k: ResNet-18 student, ResNet-34 teacher.
# Paper: 69.76 (baseline) -> 71.21 with KD (tau 4) -> 72.07 with DIST (dist_resnet34_resnet18_*).
# Official recipe: hunto/image_classification_sota configs/strategies/distill/resnet_kdt4.yaml,
# `kd: 'kdt4'` = KLDivergence(tau=4) (scaled by tau^2, batch mean), `ori_loss_weight: 0.9`,
# `kd_loss_weight: 1.0`; everything else as the DIST config of this pair.
_base_ = ['./dist_resnet34_resnet18_8xb32_in1k.py']

model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.9))),  # the cross-entropy: 0.9
    loss_cls=dict(_delete_=True, type='mmdist.KDLoss', tau=4.0, loss_weight=1.0))
