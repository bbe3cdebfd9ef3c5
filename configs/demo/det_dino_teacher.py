# DINO teacher on the demo data: a ResNet-18 of base width 32, 4 feature levels, 2 encoder
# and 3 decoder layers with FFNs of 512, 100 queries, 30 denoising queries; from scratch,
# twice the students' epochs.
_base_ = ['./det_dino_base.py']

width = 32
levels = 4
ffn = 512
model = dict(
    num_queries=100,
    num_feature_levels=levels,
    backbone=dict(
        _delete_=True, type='ResNet', depth=18, base_channels=width, num_stages=4,
        out_indices=(1, 2, 3), frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False, style='pytorch', init_cfg=None),  # init_cfg=None: no pretrained weights
    neck=dict(in_channels=[width * 2, width * 4, width * 8], num_outs=levels),
    encoder=dict(num_layers=2, layer_cfg=dict(self_attn_cfg=dict(num_levels=levels),
                                              ffn_cfg=dict(feedforward_channels=ffn))),
    decoder=dict(num_layers=3, layer_cfg=dict(cross_attn_cfg=dict(num_levels=levels),
                                              ffn_cfg=dict(feedforward_channels=ffn))),
    dn_cfg=dict(group_cfg=dict(num_dn_queries=30)),
    test_cfg=dict(max_per_img=100))

max_epochs = 24
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs + 1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min_ratio=0.01, by_epoch=True,
         begin=0, end=max_epochs, convert_to_iter_based=True),
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
