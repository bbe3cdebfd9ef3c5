# DIST on Cityscapes, transformer teacher -> CNN student: PSPNet-R18-d8 student with
# mmseg's stock 80k protocol (4 GPUs x 2 images, SGD lr 0.01, poly; mmseg's own baseline
# 74.87), SegFormer-B5 teacher (mmseg's 160k 1024x1024 checkpoint, 82.25 mIoU). The
# teacher's logits (1/4 of the input) are resized bilinearly to the student's (1/8). The
# teacher has no auxiliary head, so loss_aux compares the student's auxiliary logits with
# the teacher's decode logits (docs/segmentation.md). No published DIST number.
_base_ = ['mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py']
custom_imports = dict(imports=['mmdist'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/segformer/segformer_mit-b5_8x1_1024x1024_160k_cityscapes/segformer_mit-b5_8x1_1024x1024_160k_cityscapes_20211206_072934-87a052ec.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='mmdist.SegmentationDistiller',
    student={{_base_.model}},
    teacher_cfg='mmseg::segformer/segformer_mit-b5_8xb1-160k_cityscapes-1024x1024.py',
    teacher_ckpt=teacher_ckpt,
    # tau = 1; weight 1 on the decode logits and 0.4 on the auxiliary logits, as the
    # CNN-teacher configs (0.4 is also mmseg's auxiliary cross-entropy weight).
    loss_decode=dict(type='mmdist.DISTLoss', tau=1.0, loss_weight=1.0),
    loss_aux=dict(type='mmdist.DISTLoss', tau=1.0, loss_weight=0.4))
