# Cross-head DIST (no paper number): ATSS-R50 student, 1x (39.4 in mmdet's zoo), RTMDet-l
# teacher (51.3): a CSPNeXt/PAFPN detector with per-level heads on strides 8, 16, 32
# against the student's shared head on strides 8-128. At each stride both have, the
# student's class-branch features (after its 4 class convs, 256 channels as the
# teacher's: no adapter) go through the teacher's frozen `rtm_cls` of that level; sigmoid
# DIST compares those logits with the teacher's own (cross-head distillation, after
# CrossKD, Wang et al., CVPR 2024). The student's levels of stride 64 and 128 have no
# teacher level and are not distilled (named in the build log). Each network sees the
# batch in its own normalisation (RTMDet: BGR, ATSS: RGB). The stock ATSS-R50 1x recipe
# runs unchanged.
_base_ = ['mmdet::atss/atss_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['mmdist'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v3.0/rtmdet/rtmdet_l_8xb32-300e_coco/rtmdet_l_8xb32-300e_coco_20220719_112030-5a0be7c4.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='mmdist.DetectionDistiller',
    student={{_base_.model}},
    teacher_cfg='mmdet::rtmdet/rtmdet_l_8xb32-300e_coco.py',
    teacher_ckpt=teacher_ckpt,
    loss_cls=dict(type='mmdist.DISTLoss', activation='sigmoid', tau=1.0, loss_weight=1.0),
    cross_head=True)
