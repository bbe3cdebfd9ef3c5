# DIST on COCO: Faster R-CNN-R50 student, Cascade Mask R-CNN-X101-64x4d teacher, 2x.
# Paper: 38.4 (student baseline) -> 40.4 with DIST; teacher 45.6.
# The teacher's first-stage box head classifies exactly the student's sampled RoIs on the
# teacher's own FPN features (no teacher RPN, assigner or sampler); softmax over C+1.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py']
custom_imports = dict(imports=['mmdist'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/cascade_rcnn/cascade_mask_rcnn_x101_64x4d_fpn_20e_coco/cascade_mask_rcnn_x101_64x4d_fpn_20e_coco_20200512_161033-bdb5126a.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='mmdist.DetectionDistiller',
    student={{_base_.model}},
    teacher_cfg='mmdet::cascade_rcnn/cascade-mask-rcnn_x101-64x4d_fpn_20e_coco.py',
    teacher_ckpt=teacher_ckpt,
    loss_cls=dict(type='mmdist.DISTLoss', activation='softmax', tau=1.0, loss_weight=1.0))
