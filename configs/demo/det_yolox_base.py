# YOLOX on the demo's detection data (docs/detection.md, "Measured on the demo data"):
# the stock YOLOX-tiny config with the data, pipelines and schedule of
# det_shapes_base.py (the RetinaNet demo), as det_rtmdet_base.py does for RTMDet. The
# stock recipe's extras are off: no Mosaic/MixUp/RandomAffine (nor the mode switch that
# turns them off), no batch resizing, no EMA or norm syncing, no pretrained weights.
# Models and schedules are set by det_yolox_teacher.py / det_yolox_student.py.
_base_ = ['mmdet::yolox/yolox_tiny_8xb8-300e_coco.py']
custom_imports = dict(imports=['mmdist'], allow_failed_imports=False)

classes = ('rectangle', 'ellipse', 'triangle', 'cross', 'ring', 'diamond')
data_root = 'work_dirs/demo/det/data/'
image_size = 128

model = dict(
    data_preprocessor=dict(batch_augments=None),
    bbox_head=dict(num_classes=len(classes)))

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
    batch_size=8, num_workers=0, persistent_workers=False,
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(_delete_=True, type='CocoDataset', data_root=data_root,
                 metainfo=dict(classes=classes),
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
