# Teacher ladder, segmentation student trained alone: the demo's student (DeepLabV3 with
# a ResNet-18-d8 of base width 16, about 0.9M parameters), from scratch, 500 iterations.
# student_kd_tau4.py, student_kd_tau1.py and student_dist.py wrap this file unchanged.
_base_ = ['./base.py']

width = 16
model = dict(
    backbone=dict(depth=18, stem_channels=width, base_channels=width, init_cfg=None),
    decode_head=dict(in_channels=width * 8, channels=width * 2),
    auxiliary_head=dict(in_channels=width * 4, channels=width))

max_iters = 500
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
default_hooks = dict(checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
