# DIST on Cityscapes, Mask2Former teacher -> CNN student: PSPNet-R18-d8 student with
# mmseg's stock 80k protocol (mmseg's own baseline 74.87), Mask2Former Swin-B (ImageNet-22k
# pretrained) teacher (mmseg's 90k checkpoint, 83.52 mIoU). The teacher's per-pixel class
# distribution is its semantic map as mmseg's Mask2FormerHead.predict builds it
# (softmax class scores x sigmoid masks of its 100 queries, masks resized from 1/4 to the
# student's 1/8), normalised over classes; loss_aux compares the student's auxiliary
# logits with that same map (the teacher has no auxiliary head; docs/segmentation.md).
# No published DIST number.
_base_ = ['mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py']
custom_imports = dict(imports=['mmdist'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/mask2former/mask2former_swin-b-in22k-384x384-pre_8xb2-90k_cityscapes-512x1024/mask2former_swin-b-in22k-384x384-pre_8xb2-90k_cityscapes-512x1024_20221203_045030-9a86a225.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='mmdist.SegmentationDistiller',
    student={{_base_.model}},
    teacher_cfg='mmseg::mask2former/'
    'mask2former_swin-b-in22k-384x384-pre_8xb2-90k_cityscapes-512x1024.py',
    teacher_ckpt=teacher_ckpt,
    loss_decode=dict(type='mmdist.DISTLoss', tau=1.0, loss_weight=1.0),
    loss_aux=dict(type='mmdist.DISTLoss', tau=1.0, loss_weight=0.4))
