# DINO student + Hinton KD on the same matched queries as det_dino_student_dist.py (per-class
# Bernoulli KL of the sigmoid scores in place of DIST).
_base_ = ['./det_dino_student_dist.py']

model = dict(
    loss_cls=dict(_delete_=True, type='mmdist.KDLoss', activation='sigmoid', tau=1.0,
                  loss_weight=1.0))
