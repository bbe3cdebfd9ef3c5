# DIST on Cityscapes, transformer teacher -> transformer student: SegFormer-B0 student
# with mmseg's stock protocol (8 GPUs x 1 image, 1024x1024 crops, 160k iterations, AdamW,
# ImageNet-pretrained MiT-B0; mmseg's own baseline 76.54), SegFormer-B5 teacher (mmseg's
# 160k checkpoint, 82.25 mIoU). Both heads predict at 1/4 of the input: logits compared
# pixel for pixel, no resizing; neither has an auxiliary head. No published DIST number;
# for scale, CIRKD (another logit/relation distillation method) is reported at
# 75.58 -> 76.92 for SegFormer-B4 -> B0 on Cityscapes.
_base_ = ['mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py']
custom_imports = dict(imports=['mmdist'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/segformer/segformer_mit-b5_8x1_1024x1024_160k_cityscapes/segformer_mit-b5_8x1_1024x1024_160k_cityscapes_20211206_072934-87a052ec.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='mmdist.SegmentationDistiller',
    student={{_base_.model}},
    teacher_cfg='mmseg::segformer/segformer_mit-b5_8xb1-160k_cityscapes-1024x1024.py',
    teacher_ckpt=teacher_ckpt,
    loss_decode=dict(type='mmdist.DISTLoss', tau=1.0, loss_weight=1.0))
