# Cross-head DIST (no paper number): RetinaNet-R50 student, 2x (37.4 in mmdet's zoo), GFL-R101
# teacher, ms 2x (44.7): another head family with 1 prior per location against the
# student's 9 anchors, so the two class logits cannot be compared directly. At each FPN
# level (same strides 8-128) the student's class-branch features (after its 4 class convs)
# go through the teacher's frozen `gfl_cls`; sigmoid DIST compares those logits with the
# teacher's own (cross-head distillation, after CrossKD, Wang et al., CVPR 2024). Both
# heads have 256 channels, so there is no adapter. The stock RetinaNet-R50 2x recipe runs
# unchanged.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']
custom_imports = dict(imports=['mmdist'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/gfl/gfl_r101_fpn_mstrain_2x_coco/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='mmdist.DetectionDistiller',
    student={{_base_.model}},
    teacher_cfg='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py',
    teacher_ckpt=teacher_ckpt,
    loss_cls=dict(type='mmdist.DISTLoss', activation='sigmoid', tau=1.0, loss_weight=1.0),
    cross_head=True)
