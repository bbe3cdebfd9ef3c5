# RTMDet teacher on the demo data: CSPNeXt of width factor 0.25 (about 2.2M parameters
# with its PAFPN and head of 64 channels), from scratch, 12 epochs as the demo teacher.
_base_ = ['./det_rtmdet_base.py']

widen_factor = 0.25
width = 64
model = dict(
    backbone=dict(deepen_factor=0.167, widen_factor=widen_factor),
    neck=dict(in_channels=[int(c * widen_factor) for c in (256, 512, 1024)],
              out_channels=width, num_csp_blocks=1),
    bbox_head=dict(in_channels=width, feat_channels=width))
