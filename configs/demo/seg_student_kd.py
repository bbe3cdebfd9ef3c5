# `make demo`, segmentation student + Hinton KD: seg_student.py wrapped in mmdist's
# SegmentationDistiller, as configs/dist_seg/*.py wrap the stock configs, with the
# per-pixel KL divergence of the softmax outputs in place of DIST.
_base_ = ['./seg_student.py']

model = dict(
    _delete_=True,
    type='mmdist.SegmentationDistiller',
    student={{_base_.model}},
    teacher_cfg='{{ fileDirname }}/seg_teacher.py',
    # Written by the demo (python -m demo) (the cached teacher); pass another with
    # --cfg-options model.teacher_ckpt=...
    teacher_ckpt='work_dirs/demo/seg/teacher.pth',
    loss_decode=dict(type='mmdist.KDLoss', tau=1.0, loss_weight=1.0),
    loss_aux=dict(type='mmdist.KDLoss', tau=1.0, loss_weight=0.4))
