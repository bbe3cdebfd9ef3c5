# Calibration-aware DIST for detection ("Distilling Calibrated Student from an Uncalibrated
# Teacher", arXiv 2302.11472): the student trains on mmdet's MixUp (each image blended
# 50/50 with another training image, the boxes of both kept), and the teacher sees the
# same mixed image because both networks read the same batch.
# No paper number for this setting; see docs/detection.md.
_base_ = ['./dist_retinanet-x101-64x4d_retinanet-r50_fpn_2x_coco.py']

img_scale = (1333, 800)  # (w, h): the stock RetinaNet training scale
train_pipeline = [
    # MixUp fetches its partner image through MultiImageMixDataset (already loaded).
    dict(type='MixUp', img_scale=img_scale, ratio_range=(0.8, 1.6), pad_val=114.0),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='MultiImageMixDataset',
        dataset=dict(
            type={{_base_.dataset_type}},
            data_root={{_base_.data_root}},
            ann_file='annotations/instances_train2017.json',
            data_prefix=dict(img='train2017/'),
            filter_cfg=dict(filter_empty_gt=True, min_size=32),
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True),
            ]),
        pipeline=train_pipeline))
