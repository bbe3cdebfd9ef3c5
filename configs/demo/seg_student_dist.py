# `make demo`, segmentation student + DIST: seg_student.py wrapped in mmdist's
# SegmentationDistiller with the shipped DIST setting (tau 1; weight 1.0 on the decode
# logits, 0.4 on the auxiliary logits), as configs/dist_seg/*.py, with the distiller's
# default of leaving ignored pixels out (the paper's 40k configs compare every pixel, as
# the official code does: mask_ignored=False).
_base_ = ['./seg_student.py']

model = dict(
    _delete_=True,
    type='mmdist.SegmentationDistiller',
    student={{_base_.model}},
    teacher_cfg='{{ fileDirname }}/seg_teacher.py',
    # Written by the demo (python -m demo) (the cached teacher); pass another with
    # --cfg-options model.teacher_ckpt=...
    teacher_ckpt='work_dirs/demo/seg/teacher.pth',
    loss_decode=dict(type='mmdist.DISTLoss', tau=1.0, loss_weight=1.0),
    loss_aux=dict(type='mmdist.DISTLoss', tau=1.0, loss_weight=0.4))
