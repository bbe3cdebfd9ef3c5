# `make demo`, segmentation student trained alone (the baseline): DeepLabV3 with a
# half-width ResNet-18-d8 (base width 16, about 0.9M parameters, a quarter of the
# teacher's), from scratch. The KD and DIST students (seg_student_kd.py,
# seg_student_dist.py) inherit this file unchanged: same model, data, schedule and seed.
# Width 16, not 8: trained alone for 500 iterations, the width-8 student predicts
# background everywhere (mIoU 11.9 for seeds 0, 1, 2), which is no baseline to compare
# distillation against (docs/demo.md).
_base_ = ['./seg_shapes_base.py']

width = 16
model = dict(
    backbone=dict(depth=18, stem_channels=width, base_channels=width,
                  init_cfg=None),  # init_cfg=None: no pretrained weights
    decode_head=dict(in_channels=width * 8, channels=width * 2),
    auxiliary_head=dict(in_channels=width * 4, channels=width))

max_iters = 500
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
default_hooks = dict(checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
