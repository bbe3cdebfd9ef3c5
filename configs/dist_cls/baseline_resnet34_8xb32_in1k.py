# ResNet-34 trained alone on ImageNet-1k with the official DIST code's recipe: the
# same-schedule baseline to run next to the DIST and KD configs of this student (they
# inherit this file; only the model differs). The paper's baseline (73.31) is torchvision's
# published ResNet-34; mmpretrain's own (stock recipe) is 73.62.
# Official recipe: hunto/image_classification_sota configs/strategies/distill/resnet_dist.yaml
# (8 GPUs x 32 images, SGD lr 0.1 momentum 0.9, weight decay 1e-4, 100 epochs, x0.1 every
# 30 epochs, no label smoothing, RandomResizedCrop 224 + flip): mmpretrain's stock ResNet
# recipe, inherited. Its lib/utils/optim.py builds SGD with nesterov=True and no weight
# decay on biases and 1-D parameters (the BatchNorms): set here.
_base_ = ['mmpretrain::resnet/resnet34_8xb32_in1k.py']

optim_wrapper = dict(
    optimizer=dict(nesterov=True),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
