# RTMDet student + DIST from the RTMDet teacher (det_rtmdet_teacher.py trained on the
# demo data): same-family pair, class logits compared directly (sigmoid DIST, one term
# per level of stride 8, 16, 32); the teacher runs its classification branch only.
_base_ = ['./det_rtmdet_student.py']

model = dict(
    _delete_=True,
    type='mmdist.DetectionDistiller',
    student={{_base_.model}},
    teacher_cfg='{{ fileDirname }}/det_rtmdet_teacher.py',
    # Written by projects/detection_heads/run.py; pass another with
    # --cfg-options model.teacher_ckpt=...
    teacher_ckpt='work_dirs/detection_heads/rtmdet/teacher.pth',
    loss_cls=dict(type='mmdist.DISTLoss', activation='sigmoid', tau=1.0, loss_weight=1.0))
