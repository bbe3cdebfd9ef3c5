# `make demo`, detection student + DIST: det_student.py wrapped in mmdist's
# DetectionDistiller with the DIST loss on the sigmoid class scores, as
# configs/dist_det/dist_retinanet-x101-64x4d_retinanet-r50_fpn_2x_coco.py does but with
# the distiller's default rows (one per anchor, padding masked) where the paper config
# uses the official code's (one per location, padding kept): on this data per-anchor rows
# gave the better students (docs/detection.md, "Row layouts, measured").
_base_ = ['./det_student.py']

model = dict(
    _delete_=True,
    type='mmdist.DetectionDistiller',
    student={{_base_.model}},
    teacher_cfg='{{ fileDirname }}/det_teacher.py',
    # Written by the demo (python -m demo) (the cached teacher); pass another with
    # --cfg-options model.teacher_ckpt=...
    teacher_ckpt='work_dirs/demo/det/teacher.pth',
    loss_cls=dict(type='mmdist.DISTLoss', activation='sigmoid', tau=1.0, loss_weight=1.0))
