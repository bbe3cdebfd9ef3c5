# Teacher ladder, segmentation teacher: DeepLabV3 with a ResNet-18-d8 of base width 24
# (the student: 16), from scratch, 1000 iterations (the student: 500).
_base_ = ['./base.py']

width = 24
model = dict(
    backbone=dict(depth=18, stem_channels=width, base_channels=width, init_cfg=None),
    decode_head=dict(in_channels=width * 8, channels=width * 2),
    auxiliary_head=dict(in_channels=width * 4, channels=width))

max_iters = 1000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
default_hooks = dict(checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
