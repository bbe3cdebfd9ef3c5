# `make demo`, detection: what the teacher and the student share. The stock RetinaNet
# config (model type, FPN, focal loss, assigner, COCO dataset and CocoMetric) with the
# dataloaders pointed at the synthetic COCO-format shapes that the demo (python -m demo) writes to
# work_dirs/demo/det/data (128x128 images, 6 classes; see docs/demo.md), a short
# from-scratch schedule and anchors scaled to the small images. Models and schedules
# are set by det_teacher.py / det_student.py.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']
custom_imports = dict(imports=['mmdist'], allow_failed_imports=False)

classes = ('rectangle', 'ellipse', 'triangle', 'cross', 'ring', 'diamond')
data_root = 'work_dirs/demo/det/data/'
image_size = 128

model = dict(
    bbox_head=dict(
        num_classes=len(classes),
        # Stock anchors start at 32 px on P3; the shapes are 8-56 px in 128 px images.
        anchor_generator=dict(octave_base_scale=2)))

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
# num_workers=0: on a 2-core CPU machine, loader processes only compete with training.
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes),
                 ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='images/train/'),
                 filter_cfg=dict(filter_empty_gt=True, min_size=4),
                 pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes),
                 ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='images/val/'), pipeline=test_pipeline))
test_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
# The held-out split is only evaluated after training, by tools/test.py.
val_dataloader = None
val_evaluator = None
val_cfg = None

# Schedule (in epochs; one epoch = train images / 8 iterations). From scratch and short,
# AdamW converges much faster than the stock SGD (lr 0.02 SGD: teacher box AP 5.2 after
# 12 epochs, AdamW lr 2e-3: 13.3 on the same data): linear warm-up, cosine decay,
# gradient clipping for the start. Teacher and student configs set max_epochs and the
# scheduler's T_max / end together.
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs + 1)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.002, weight_decay=0.05),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min_ratio=0.01, by_epoch=True,
         begin=0, end=max_epochs, convert_to_iter_based=True),
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1),
)
randomness = dict(seed=0)
