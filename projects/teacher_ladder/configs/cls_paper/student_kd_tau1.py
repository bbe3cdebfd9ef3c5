# Teacher ladder in the paper's regime, classification: the student + Hinton KD, tau 1,
# weighted as the official KD recipe (student_kd_tau4.py: cross-entropy 0.9, KD 1.0); only
# tau differs. Everything else as student_dist.py.
_base_ = ['./student_dist.py']

model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.9))),  # the cross-entropy: 0.9
    loss_cls=dict(_delete_=True, type='mmdist.KDLoss', tau=1.0, loss_weight=1.0))
