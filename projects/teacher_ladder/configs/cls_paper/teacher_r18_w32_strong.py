# Teacher ladder in the paper's regime, classification teacher: ResNet-18 at base width 32
# trained with the stronger recipe (strong_recipe.py: label smoothing, RandomResizedCrop,
# RandAugment) for 60 epochs, twice the plain schedule; from scratch, seed 0. Its plain
# counterpart: ../cls/teacher_r18_w32_long.py (30 epochs).
_base_ = ['./strong_recipe.py']

width = 32
model = dict(
    backbone=dict(depth=18, stem_channels=width, base_channels=width, init_cfg=None),
    head=dict(in_channels=width * 8))

epochs = 60
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=epochs, T_max=epochs - 1,
         eta_min=0.0, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=epochs, val_interval=epochs + 1)
default_hooks = dict(checkpoint=dict(interval=epochs, max_keep_ckpts=1))
