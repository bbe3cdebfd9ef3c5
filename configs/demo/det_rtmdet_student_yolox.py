# RTMDet student + cross-head DIST from the YOLOX teacher (det_yolox_teacher.py trained
# on the demo data): another head family with the same layout (one prior per location,
# strides 8, 16, 32), so the pair also allows the direct path (model.cross_head=False:
# the student's class logits vs the teacher's joint score). Cross-head: the student's
# class-branch features through a 1x1 adapter (16 -> 64 channels) and the teacher's
# per-level classifier `multi_level_conv_cls`, vs the teacher's own class logits.
_base_ = ['./det_rtmdet_student.py']

model = dict(
    _delete_=True,
    type='mmdist.DetectionDistiller',
    student={{_base_.model}},
    teacher_cfg='{{ fileDirname }}/det_yolox_teacher.py',
    # Written by projects/detection_heads/run.py; pass another with
    # --cfg-options model.teacher_ckpt=...
    teacher_ckpt='work_dirs/detection_heads/yolox/teacher.pth',
    loss_cls=dict(type='mmdist.DISTLoss', activation='sigmoid', tau=1.0, loss_weight=1.0),
    cross_head=True)
