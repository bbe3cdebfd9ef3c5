# DIST on COCO: RetinaNet-R50 student, RetinaNet-X101-64x4d teacher, 2x schedule.
# Paper: 37.4 (student baseline) -> 39.8 with DIST; teacher 41.0.
# Official config: hunto/MasKD mmrazor/configs/distill/dist/dist_retinanet_x101-retinanet-r50_coco.py
# - teacher: mmdet's retinanet_x101_64x4d_fpn_1x_coco (41.0 AP), the checkpoint it loads;
# - DIST(beta=1, gamma=1, use_sigmoid=True, loss_weight=1) on `bbox_head.retina_cls`, one
#   loss per FPN level, summed; its `dist_kd.py` reshapes each (N, A*C, H, W) map to rows
#   of A*C = 720 scores per location and keeps the batch padding (dense_rows='location',
#   mask_padding=False below);
# - student, data (2 images x 8 GPUs, 1333x800, flip), SGD lr 0.01 and the 2x schedule:
#   mmdet's stock RetinaNet-R50 2x, which this config inherits unchanged.
# Everything but the model (data, pipeline, schedule, runtime) is the stock student config.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']
custom_imports = dict(imports=['mmdist'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_x101_64x4d_fpn_1x_coco/retinanet_x101_64x4d_fpn_1x_coco_20200130-366f5af1.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='mmdist.DetectionDistiller',
    student={{_base_.model}},
    teacher_cfg='mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py',
    teacher_ckpt=teacher_ckpt,
    # RetinaNet classifies with independent sigmoids: correlate per-class sigmoid scores.
    loss_cls=dict(type='mmdist.DISTLoss', activation='sigmoid', tau=1.0, loss_weight=1.0),
    dense_rows='location',
    mask_padding=False)
