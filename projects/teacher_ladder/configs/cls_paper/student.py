# Teacher ladder in the paper's regime, classification student trained alone: mmpretrain's
# ResNet-18 at base width 16 (twice the wide-gap ladder's student), from scratch, 30 epochs
# of the plain recipe (../cls/base.py), so that it ends a few points below its teachers, as
# the paper's ResNet-18 (69.8 %) below ResNet-34...152 (73.3-78.3 %). Chosen from pilot runs
# of students and teachers alone, before any distillation (docs/teacher_ladder.md). The KD
# and DIST students (student_kd_tau4.py, student_kd_tau1.py, student_dist.py) wrap this file
# unchanged: same model, data, schedule and seed.
_base_ = ['../cls/base.py']

width = 16
model = dict(
    backbone=dict(depth=18, stem_channels=width, base_channels=width, init_cfg=None),
    head=dict(in_channels=width * 8))

epochs = 30
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=epochs, T_max=epochs - 1,
         eta_min=0.0, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=epochs, val_interval=epochs + 1)
default_hooks = dict(checkpoint=dict(interval=epochs, max_keep_ckpts=1))
