# DINO student + DIST from the DINO teacher (det_dino_teacher.py trained on the demo data):
# per image, the student's 50 matching queries are matched to the teacher's 100 final-layer
# predictions by the student's Hungarian assigner; sigmoid DIST on the matched queries'
# class logits of the student's final decoder layer, as the shipped DINO config
# (configs/dist_det/dist_dino-5scale-swin-l_dino-4scale-r50_8xb2-12e_coco.py).
_base_ = ['./det_dino_student.py']

model = dict(
    _delete_=True,
    type='mmdist.DetectionDistiller',
    student={{_base_.model}},
    teacher_cfg='{{ fileDirname }}/det_dino_teacher.py',
    # Written by projects/detection_heads/run.py; pass another with
    # --cfg-options model.teacher_ckpt=...
    teacher_ckpt='work_dirs/detection_heads/dino/teacher.pth',
    loss_cls=dict(type='mmdist.DISTLoss', activation='sigmoid', tau=1.0, loss_weight=1.0))
