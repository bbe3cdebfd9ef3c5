# `make demo`, detection student + Hinton KD: det_student.py wrapped in mmdist's
# DetectionDistiller, as configs/dist_det/*.py wrap the stock configs, with the KD loss
# (per-class Bernoulli KL of the sigmoid scores) in place of DIST.
_base_ = ['./det_student.py']

model = dict(
    _delete_=True,
    type='mmdist.DetectionDistiller',
    student={{_base_.model}},
    teacher_cfg='{{ fileDirname }}/det_teacher.py',
    # Written by the demo (python -m demo) (the cached teacher); pass another with
    # --cfg-options model.teacher_ckpt=...
    teacher_ckpt='work_dirs/demo/det/teacher.pth',
    loss_cls=dict(type='mmdist.KDLoss', activation='sigmoid', tau=1.0, loss_weight=1.0))
