# DIST for DINO (no paper number; query-based detectors are not in the DIST paper):
# DINO-4scale R50 student (49.0 in mmdet's zoo), DINO-5scale Swin-L teacher (57.2, the
# zoo's strongest DINO with an OpenMMLab download). The stock DINO-4scale R50 recipe runs
# unchanged: its data, 12-epoch schedule, denoising queries, matcher and losses. Per
# image, the student's 900 matching queries are matched to the teacher's 900 final-layer
# predictions by the student's own Hungarian assigner (focal class + L1 + GIoU cost);
# sigmoid DIST on the matched queries' class logits of the student's final decoder layer,
# all images of the batch together (docs/detection.md, "DETR-family detectors").
_base_ = ['mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py']
custom_imports = dict(imports=['mmdist'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v3.0/dino/dino-5scale_swin-l_8xb2-12e_coco/dino-5scale_swin-l_8xb2-12e_coco_20230228_072924-a654145f.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='mmdist.DetectionDistiller',
    student={{_base_.model}},
    teacher_cfg='mmdet::dino/dino-5scale_swin-l_8xb2-12e_coco.py',
    teacher_ckpt=teacher_ckpt,
    loss_cls=dict(type='mmdist.DISTLoss', activation='sigmoid', tau=1.0, loss_weight=1.0))
