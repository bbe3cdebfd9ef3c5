# YOLOX student + DIST from the YOLOX teacher (det_yolox_teacher.py trained on the demo
# data). score='joint' (the default for YOLOX heads): DIST compares
# sigmoid(cls) * sigmoid(obj), YOLOX's detection score, as its logit; score='class'
# compares the class logits alone (docs/detection.md, "YOLOX", has both measured).
_base_ = ['./det_yolox_student.py']

model = dict(
    _delete_=True,
    type='mmdist.DetectionDistiller',
    student={{_base_.model}},
    teacher_cfg='{{ fileDirname }}/det_yolox_teacher.py',
    # Written by projects/detection_heads/run.py; pass another with
    # --cfg-options model.teacher_ckpt=...
    teacher_ckpt='work_dirs/detection_heads/yolox/teacher.pth',
    loss_cls=dict(type='mmdist.DISTLoss', activation='sigmoid', tau=1.0, loss_weight=1.0),
    score='joint')
