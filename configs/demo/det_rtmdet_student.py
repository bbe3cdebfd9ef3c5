# RTMDet student on the demo data, trained alone (the baseline of the RTMDet and
# cross-head measurements): CSPNeXt of width factor 0.09375, PAFPN and head of 16
# channels (about 0.29M parameters, as the RetinaNet demo student), 6 epochs as the demo
# students. The distilled students inherit this file unchanged.
_base_ = ['./det_rtmdet_base.py']

widen_factor = 0.09375
width = 16
model = dict(
    backbone=dict(deepen_factor=0.167, widen_factor=widen_factor),
    neck=dict(in_channels=[int(c * widen_factor) for c in (256, 512, 1024)],
              out_channels=width, num_csp_blocks=1),
    bbox_head=dict(in_channels=width, feat_channels=width))

max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs + 1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min_ratio=0.01, by_epoch=True,
         begin=0, end=max_epochs, convert_to_iter_based=True),
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
