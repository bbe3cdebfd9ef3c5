# SegFormer teacher on the demo's segmentation data: the demo's data, pipelines, metric,
# optimizer and 1000-iteration schedule (configs/demo/seg_shapes_base.py and
# seg_teacher.py) with the model replaced by a SegFormer (mmseg's MixVisionTransformer +
# SegformerHead, the B0 layout of mmseg's segformer_mit-b0 config: 3.7M parameters,
# about the demo teacher's 3.5M), from scratch. Its logits are at 1/4 of the input, the
# demo student's at 1/8.
_base_ = ['../../../configs/demo/seg_teacher.py']

num_classes = 7
model = dict(
    _delete_=True,
    type='EncoderDecoder',
    data_preprocessor={{_base_.model.data_preprocessor}},
    pretrained=None,
    backbone=dict(
        type='MixVisionTransformer',
        in_channels=3,
        embed_dims=32,
        num_stages=4,
        num_layers=[2, 2, 2, 2],
        num_heads=[1, 2, 5, 8],
        patch_sizes=[7, 3, 3, 3],
        sr_ratios=[8, 4, 2, 1],
        out_indices=(0, 1, 2, 3),
        mlp_ratio=4,
        qkv_bias=True,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.1,
        init_cfg=None),  # no pretrained weights
    decode_head=dict(
        type='SegformerHead',
        in_channels=[32, 64, 160, 256],
        in_index=[0, 1, 2, 3],
        channels=256,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
