# Teacher ladder, classification student trained alone: mmpretrain's ResNet-18 at base
# width 8 (an eighth of the real one), from scratch, on the synthetic shapes. The KD and
# DIST students (student_kd_tau4.py, student_kd_tau1.py, student_dist.py) wrap this file
# unchanged: same model, data, schedule and seed.
_base_ = ['./base.py']

width = 8
model = dict(
    backbone=dict(depth=18, stem_channels=width, base_channels=width, init_cfg=None),
    head=dict(in_channels=width * 8))
