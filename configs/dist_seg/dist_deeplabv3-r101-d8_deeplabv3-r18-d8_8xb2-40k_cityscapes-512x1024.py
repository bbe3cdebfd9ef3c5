# DIST on Cityscapes, official protocol: DeepLabV3-R18-d8 student, DeepLabV3-R101-d8 teacher.
# Paper: 74.21 (official baseline) -> 77.10 with DIST; mmseg's own 80k R18 baseline is 76.70.
# The protocol, teacher and losses: the PSPNet-R18 config's (hunto/DIST_KD
# segmentation/train_scripts/train_kd/deeplabv3_res18.sh differs from pspnet_res18.sh only
# in --student-model). The student: mmseg's DeepLabV3-R18-d8
# (mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py), which is the PSPNet
# student with an ASPP decode head.
_base_ = ['./dist_deeplabv3-r101-d8_pspnet-r18-d8_8xb2-40k_cityscapes-512x1024.py']

model = dict(
    student=dict(
        decode_head=dict(
            _delete_=True,
            type='ASPPHead',
            in_channels=512,
            in_index=3,
            channels=128,
            dilations=(1, 12, 24, 36),
            dropout_ratio=0.1,
            num_classes=19,
            norm_cfg=dict(type='SyncBN', requires_grad=True),
            align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))))
