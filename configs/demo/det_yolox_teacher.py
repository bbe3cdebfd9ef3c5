# YOLOX teacher on the demo data: CSPDarknet of width factor 0.25 with a PAFPN and head of
# 64 channels, from scratch, 12 epochs as the demo teacher.
_base_ = ['./det_yolox_base.py']

widen_factor = 0.25
width = 64
model = dict(
    backbone=dict(deepen_factor=0.33, widen_factor=widen_factor),
    neck=dict(in_channels=[int(c * widen_factor) for c in (256, 512, 1024)],
              out_channels=width, num_csp_blocks=1),
    bbox_head=dict(in_channels=width, feat_channels=width))
