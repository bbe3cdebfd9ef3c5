# RTMDet student + cross-head DIST from the demo's RetinaNet teacher (det_teacher.py):
# heterogeneous pair (9 anchors and 5 levels vs 1 prior and 3 levels; 16 vs 64 class
# channels). The student's class-branch features of stride 8, 16, 32 go through a 1x1
# adapter and the teacher's `retina_cls`; DIST compares those logits with the teacher's
# own (the teacher's levels of stride 64 and 128 have no partner and are not distilled).
_base_ = ['./det_rtmdet_student.py']

model = dict(
    _delete_=True,
    type='mmdist.DetectionDistiller',
    student={{_base_.model}},
    teacher_cfg='{{ fileDirname }}/det_teacher.py',
    # The demo's cached teacher (python -m demo); pass another with
    # --cfg-options model.teacher_ckpt=...
    teacher_ckpt='work_dirs/demo/det/teacher.pth',
    loss_cls=dict(type='mmdist.DISTLoss', activation='sigmoid', tau=1.0, loss_weight=1.0),
    cross_head=True)
