# Teacher ladder, classification: the student + Hinton KD, tau 4, with the official recipe
# of the paper's KD baseline (hunto/image_classification_sota
# configs/strategies/distill/resnet_kdt4.yaml: `ori_loss_weight: 0.9`, `kd_loss_weight: 1.0`;
# as configs/dist_cls/kd_resnet34_resnet18_8xb32_in1k.py): the student's cross-entropy
# weighted 0.9, KD 1.0. Everything else as student_dist.py.
_base_ = ['./student_dist.py']

model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.9))),  # the cross-entropy: 0.9
    loss_cls=dict(_delete_=True, type='mmdist.KDLoss', tau=4.0, loss_weight=1.0))
