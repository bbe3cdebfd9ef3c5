# Teacher ladder, classification: the student + Hinton KD, tau 1 (the tau of the demo's and the
# faithfulness study's KD configs).
# student.py wrapped in mmdist.ClassificationDistiller (distillation loss with weight 1.0
# on top of the student's cross-entropy, as configs/dist_cls/*.py), tested next to its
# teacher (mmdist.PairedTestLoop: top-1 and the study's mmdist.ClsAgreementMetric).
# run_study.py sets model.teacher_cfg and model.teacher_ckpt to each teacher in turn.
_base_ = ['./student.py']
custom_imports = dict(
    imports=['mmdist', 'projects.teacher_ladder.teacher_ladder.metrics'],
    allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmdist.ClassificationDistiller',
    student={{_base_.model}},
    teacher_cfg='{{ fileDirname }}/teacher_r18_w16.py',
    teacher_ckpt='work_dirs/teacher_ladder/cls/teacher.pth',
    loss_cls=dict(type='mmdist.KDLoss', tau=1.0, loss_weight=1.0))
test_cfg = dict(type='mmdist.PairedTestLoop')
test_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='mmdist.ClsAgreementMetric')]
