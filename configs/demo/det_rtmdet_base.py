# RTMDet on the demo's detection data (docs/detection.md, "Measured on the demo data"):
# the stock RTMDet-tiny config with the data, pipelines and schedule of
# det_shapes_base.py (the RetinaNet demo), so that RTMDet runs compare with the demo's
# runs on equal terms. The stock recipe's extras are off, as in the RetinaNet demo:
# no Mosaic/MixUp pipeline or its second-stage switch, no EMA, BatchNorm for SyncBN,
# no pretrained backbone. Models and schedules are set by det_rtmdet_teacher.py /
# det_rtmdet_student.py.
_base_ = ['mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py']
custom_imports = dict(imports=['mmdist'], allow_failed_imports=False)

classes = ('rectangle', 'ellipse', 'triangle', 'cross', 'ring', 'diamond')
data_root = 'work_dirs/demo/det/data/'
image_size = 128
norm_cfg = dict(type='BN', momentum=0.03, eps=0.001)

model = dict(
    # pad to multiples of 32, as the RetinaNet demo (and its teacher) does
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(norm_cfg=norm_cfg, init_cfg=None),
    neck=dict(norm_cfg=norm_cfg),
    bbox_head=dict(num_classes=len(classes), norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False, pin_memory=False,
    batch_sampler=dict(_delete_=True, type='AspectRatioBatchSampler'),
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes),
                 ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='images/train/'),
                 filter_cfg=dict(filter_empty_gt=True, min_size=4),
                 pipeline=train_pipeline))
test_dataloader = dict(
    _delete_=True,
    batch_size=8, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CocoDataset', data_root=data_root, metainfo=dict(classes=classes),
                 ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='images/val/'), test_mode=True,
                 pipeline=test_pipeline))
test_evaluator = dict(_delete_=True, type='CocoMetric', metric='bbox',
                      ann_file=data_root + 'annotations/instances_val.json')
val_dataloader = None
val_evaluator = None
val_cfg = None

# det_shapes_base.py's schedule: AdamW lr 2e-3, linear warm-up, cosine decay, clipping.
max_epochs = 12
train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=max_epochs,
                 val_interval=max_epochs + 1)
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.002, weight_decay=0.05),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min_ratio=0.01, by_epoch=True,
         begin=0, end=max_epochs, convert_to_iter_based=True),
]
custom_hooks = []
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1),
)
randomness = dict(seed=0)
