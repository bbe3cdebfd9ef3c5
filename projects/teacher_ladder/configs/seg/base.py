# Teacher ladder, segmentation: what every teacher and student shares. The demo's
# segmentation setting (configs/demo/seg_shapes_base.py): mmseg's stock DeepLabV3-R18-d8
# Cityscapes config (CityscapesDataset, IoUMetric) with the dataloaders pointed at the
# synthetic Cityscapes-format shapes (mmdist.datasets.make_cityscapes_shapes with the
# demo's arguments: 64x128 images, train id 0 = background, 1-6 = six shapes) and a short
# from-scratch AdamW schedule. Widths and schedule lengths: teacher_*.py / student.py.
_base_ = ['mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py']
custom_imports = dict(imports=['mmdist'], allow_failed_imports=False)

data_root = 'work_dirs/teacher_ladder/seg/data/'
crop_size = (64, 128)
num_classes = 7  # background + 6 shapes (CityscapesDataset's other ids never occur)

model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    # The stock ASPP rates (12, 24, 36) exceed the 8x16 feature map of a 64x128 crop.
    decode_head=dict(num_classes=num_classes, dilations=(1, 2, 3, 4)),
    auxiliary_head=dict(num_classes=num_classes))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(crop_size[1], crop_size[0]), ratio_range=(0.75, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
val_dataloader = None
val_evaluator = None
val_cfg = None

optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=0.002, weight_decay=0.01))
default_hooks = dict(logger=dict(interval=20))
randomness = dict(seed=0)
