# DIST for RTMDet (no paper number): RTMDet-s student (44.5 in mmdet's zoo), RTMDet-l
# teacher (51.3). The stock RTMDet-s recipe runs unchanged: its data, its 300-epoch
# schedule, its EMA and its switch to the second-stage pipeline (no Mosaic/MixUp) for the
# last 20 epochs. The teacher runs its classification branch only (`cls_convs` and
# `rtm_cls` of each level); sigmoid DIST on the class logits of each level of stride 8,
# 16, 32, summed. Distillation stops when the pipeline switches (mmdist.StopDistillHook):
# the last 20 epochs train the student alone, as RTMDet distillation recipes do.
_base_ = ['mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py']
custom_imports = dict(imports=['mmdist'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v3.0/rtmdet/rtmdet_l_8xb32-300e_coco/rtmdet_l_8xb32-300e_coco_20220719_112030-5a0be7c4.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='mmdist.DetectionDistiller',
    student={{_base_.model}},
    teacher_cfg='mmdet::rtmdet/rtmdet_l_8xb32-300e_coco.py',
    teacher_ckpt=teacher_ckpt,
    loss_cls=dict(type='mmdist.DISTLoss', activation='sigmoid', tau=1.0, loss_weight=1.0))

# The stock hooks (EMA; the second-stage pipeline from epoch 280), restated because a
# list is replaced, not merged, plus the end of distillation at the same epoch.
stage2_epoch = 280
custom_hooks = [
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0002, update_buffers=True,
         priority=49),
    dict(type='PipelineSwitchHook', switch_epoch=stage2_epoch,
         switch_pipeline={{_base_.train_pipeline_stage2}}),
    dict(type='mmdist.StopDistillHook', stop_epoch=stage2_epoch),
]
