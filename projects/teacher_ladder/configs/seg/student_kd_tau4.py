# Teacher ladder, segmentation: the student + Hinton KD, tau 4 (the paper's KD baseline).
# student.py wrapped in mmdist.SegmentationDistiller (weight 1.0 on the decode logits,
# 0.4 on the auxiliary logits, as configs/dist_seg/*.py), tested next to its teacher
# (mmdist.PairedTestLoop: mIoU and mmdist.SegFaithfulnessMetric). run_study.py sets
# model.teacher_cfg and model.teacher_ckpt to each teacher of the ladder in turn.
_base_ = ['./student.py']

model = dict(
    _delete_=True,
    type='mmdist.SegmentationDistiller',
    student={{_base_.model}},
    teacher_cfg='{{ fileDirname }}/teacher_r18_w32.py',
    teacher_ckpt='work_dirs/teacher_ladder/seg/teacher.pth',
    loss_decode=dict(type='mmdist.KDLoss', tau=4.0, loss_weight=1.0),
    loss_aux=dict(type='mmdist.KDLoss', tau=4.0, loss_weight=0.4))
test_cfg = dict(type='mmdist.PairedTestLoop')
test_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU']),
                  dict(type='mmdist.SegFaithfulnessMetric')]
