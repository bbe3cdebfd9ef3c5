# DIST on Cityscapes with the official DIST segmentation protocol: 512x1024 crops, total
# batch 16 (8 GPUs x 2), 40k iterations, SGD lr 0.02, momentum 0.9, weight decay 5e-4,
# poly decay to 1e-4; logits compared at the heads' 1/8 output resolution.
# Paper: 74.21 (official baseline) -> 77.10 with DIST; mmseg's own 80k R18 baseline is 76.70.
_base_ = ['./dist_deeplabv3-r101-d8_deeplabv3-r18-d8_4xb2-80k_cityscapes-512x1024.py']

train_dataloader = dict(batch_size=2)
optim_wrapper = dict(optimizer=dict(lr=0.02, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=40000, by_epoch=False)
]
train_cfg = dict(max_iters=40000, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
