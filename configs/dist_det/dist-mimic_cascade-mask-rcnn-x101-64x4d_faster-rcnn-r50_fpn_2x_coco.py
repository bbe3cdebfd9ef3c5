# "DIST + mimic" for Faster R-CNN-R50 with a Cascade Mask R-CNN-X101-64x4d teacher.
# Paper: 38.4 -> 41.8.
_base_ = ['./dist_cascade-mask-rcnn-x101-64x4d_faster-rcnn-r50_fpn_2x_coco.py']

model = dict(mimic=dict(loss_weight=1.0))
