# Teacher ladder, classification: the student + DIST with loss weight 1 (on top of the
# cross-entropy at 1), the weight this study used before it followed the official ImageNet
# recipe (weight 2: student_dist.py). Run next to it on the same teachers, seeds and data,
# so that the effect of the weight alone is measured. Everything else as student_dist.py.
_base_ = ['./student_dist.py']

model = dict(loss_cls=dict(loss_weight=1.0))
