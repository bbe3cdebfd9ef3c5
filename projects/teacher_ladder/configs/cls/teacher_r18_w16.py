# Teacher ladder, classification teacher: mmpretrain's ResNet-18 at base width 16 (2x the
# student's), from scratch, 10 epochs (the student: 10), seed 0.
_base_ = ['./base.py']

width = 16
model = dict(
    backbone=dict(depth=18, stem_channels=width, base_channels=width, init_cfg=None),
    head=dict(in_channels=width * 8))

epochs = 10
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=epochs, T_max=epochs - 1,
         eta_min=0.0, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=epochs, val_interval=epochs + 1)
default_hooks = dict(checkpoint=dict(interval=epochs, max_keep_ckpts=1))
