# Teacher ladder, classification: what every teacher and student shares. mmpretrain's stock
# ResNet-18 ImageNet config (ImageClassifier, ImageNet dataset class, Accuracy metric) with
# the dataloaders pointed at the synthetic ImageNet-format shapes that run_study.py writes
# (mmdist.datasets.make_imagenet_shapes: 6 classes, 32x32 images) and a short from-scratch
# schedule. Models and schedule lengths are set by teacher_*.py / student.py; every
# student (alone, KD, DIST) has the same schedule, data order and seed.
_base_ = ['mmpretrain::resnet/resnet18_8xb32_in1k.py']
custom_imports = dict(imports=['mmdist'], allow_failed_imports=False)

data_root = 'work_dirs/teacher_ladder/cls/data/'
classes = ('rectangle', 'ellipse', 'triangle', 'cross', 'ring', 'diamond')
num_classes = len(classes)
image_size = 32

# A ResNet of the given depth and width, no pretrained weights; its head sized for it.
model = dict(
    backbone=dict(depth=18, stem_channels=16, base_channels=16, init_cfg=None),
    head=dict(num_classes=num_classes, in_channels=16 * 8, topk=(1, )))
data_preprocessor = dict(num_classes=num_classes)

# The CIFAR-style augmentation for 32x32 images (mmpretrain's cifar10 configs): padded
# random crop and horizontal flip.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=image_size, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
# num_workers=0: on a 2-core CPU machine, loader processes only compete with training;
# serialize_data=False: the lists are small, and serialising them runs gc.collect().
train_dataloader = dict(
    batch_size=64, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, split='train', metainfo=dict(classes=classes),
                 pipeline=train_pipeline, serialize_data=False))
test_dataloader = dict(
    batch_size=128, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, split='val', metainfo=dict(classes=classes),
                 pipeline=test_pipeline, serialize_data=False))
test_evaluator = dict(type='Accuracy', topk=(1, ))
# The held-out split is only evaluated after training.
val_dataloader = None
val_evaluator = None
val_cfg = None

# AdamW (from scratch and short, it converged much faster here than the stock SGD, which
# stayed at chance for epochs with the wider networks), one epoch of linear warm-up, then
# cosine decay to zero, by iteration. A file that changes `epochs` restates the schedule.
epochs = 10
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=0.003, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=epochs, T_max=epochs - 1,
         eta_min=0.0, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=epochs, val_interval=epochs + 1)
auto_scale_lr = dict(enable=False)
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(interval=epochs, max_keep_ckpts=1))
randomness = dict(seed=0)
