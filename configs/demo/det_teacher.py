# `make demo`, detection teacher: RetinaNet with a 4x wider ResNet-18 (base width 32,
# about 3.3M parameters), trained from scratch for twice the students' epochs.
_base_ = ['./det_shapes_base.py']

width = 32
model = dict(
    backbone=dict(
        _delete_=True, type='ResNet', depth=18, base_channels=width, num_stages=4,
        out_indices=(0, 1, 2, 3), frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False, style='pytorch', init_cfg=None),  # init_cfg=None: no pretrained weights
    neck=dict(in_channels=[width, width * 2, width * 4, width * 8], out_channels=64),
    bbox_head=dict(in_channels=64, feat_channels=64, stacked_convs=2))

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs + 1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min_ratio=0.01, by_epoch=True,
         begin=0, end=max_epochs, convert_to_iter_based=True),
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
