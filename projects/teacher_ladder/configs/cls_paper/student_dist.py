# Teacher ladder in the paper's regime, classification: the student + DIST with the official
# ImageNet recipe (hunto/image_classification_sota configs/strategies/distill/resnet_dist.yaml:
# DIST(beta=1, gamma=1, tau=1), `ori_loss_weight: 1.`, `kd_loss_weight: 2.`; as
# configs/dist_cls/dist_resnet34_resnet18_8xb32_in1k.py and ../cls/student_dist.py): student.py
# wrapped in mmdist.ClassificationDistiller, DIST with weight 2 on top of the student's
# cross-entropy (weight 1), tested next to its teacher (mmdist.PairedTestLoop: top-1 and the
# study's mmdist.ClsAgreementMetric). run_study.py sets model.teacher_cfg and
# model.teacher_ckpt to each teacher in turn. The KD configs inherit this file.
_base_ = ['./student.py']
custom_imports = dict(
    imports=['mmdist', 'projects.teacher_ladder.teacher_ladder.metrics'],
    allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmdist.ClassificationDistiller',
    student={{_base_.model}},
    teacher_cfg='{{ fileDirname }}/../cls/teacher_r18_w32_long.py',
    teacher_ckpt='work_dirs/teacher_ladder/cls_paper/teacher.pth',
    loss_cls=dict(type='mmdist.DISTLoss', tau=1.0, inter_loss_weight=1.0,
                  intra_loss_weight=1.0, loss_weight=2.0))
test_cfg = dict(type='mmdist.PairedTestLoop')
test_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='mmdist.ClsAgreementMetric')]
