# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""One training step on CPU, side by side: student alone, teacher forward, mmdist, naive.

    python tools/analysis_tools/benchmark_distill_step.py [--repeat 7] [--models retinanet ...]

For a tiny RetinaNet, Faster R-CNN (Cascade R-CNN teacher: the shipped Cascade Mask
R-CNN without its mask branch, as the synthetic data has no masks) and PSPNet (DeepLabV3
teacher) built from the shipped distillation configs (shrunk with ``mmdist.testing``) on
a synthetic batch, it times (median of ``--repeat``, all variants interleaved):

- ``student``: the student's own loss, backward and SGD step;
- ``teacher``: the stock teacher's plain tensor-mode forward (``mode='tensor'``) under
  no_grad, as mmdet/mmseg build it;
- ``folded``: the same forward of the distiller's teacher, whose BatchNorms mmdist folds
  into its convolutions (``teacher_fuse_conv_bn=True``, the default);
- ``joint``: the student's step with the stock teacher's forward run inside it, first (as
  the distillers run it) and without any distillation loss: what running both networks
  in one step costs before mmdist does anything;
- ``mmdist``: the distiller's training step (student step + what distillation needs);
- ``naive``: a distillation step in which the stock teacher runs its full loss-mode
  forward (assigners, samplers, RPN, losses), as MMRazor 1.x's recorders do, then the
  same distillation losses;

and prints ``mmdist / (student + teacher)``, ``mmdist / (student + folded)`` (what is left
of mmdist's own overhead once the teacher is as cheap as mmdist makes it),
``mmdist / joint`` and ``mmdist / naive``. Stock and folded teacher have the same weights
(the distiller loads the stock teacher's state dict from a checkpoint). ``--models
retinanet_shipped`` (not in the default run: minutes per step set on a CPU) times the
shipped RetinaNet config's own models — ResNet-50 student, ResNeXt-101-64x4d teacher, 80
classes, no pretrained weights — on 512 x 512 images. A second table times
one validation batch: the plain loop's work (preprocess + student ``predict``) against the
paired loop's (the same + the teacher's ``predict`` on the same preprocessed batch).
``--memory`` adds a third table: the peak resident memory of one step of each variant
above what the process held before it (model, gradients, optimizer state, batch), each
variant in a fresh process.
"""
import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope, init_default_scope

from mmdist.datasets import SHAPE_CLASSES, make_cityscapes_shapes, make_coco_shapes
from mmdist.models.utils.recorder import record_calls
from mmdist.models.utils.teacher import build_teacher
from mmdist.registry import MODELS
from mmdist.testing import shrink_segmentor, tiny_retinanet, tiny_two_stage
from mmdist.testing.memory import extra_peak_bytes

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = {
    'retinanet': 'configs/dist_det/dist_retinanet-x101-64x4d_retinanet-r50_fpn_2x_coco.py',
    'faster_rcnn':
    'configs/dist_det/dist_cascade-mask-rcnn-x101-64x4d_faster-rcnn-r50_fpn_2x_coco.py',
    'pspnet': 'configs/dist_seg/dist_deeplabv3-r101-d8_pspnet-r18-d8_8xb2-40k_cityscapes-'
              '512x1024.py',
}
SCOPES = {'retinanet': 'mmdet', 'faster_rcnn': 'mmdet', 'pspnet': 'mmseg'}
#: Not in the default run (minutes on a CPU): the shipped RetinaNet config's own models
#: (ResNet-50 student, ResNeXt-101-64x4d teacher, 80 classes) on 512 x 512 images.
SHIPPED = {'retinanet_shipped': 'retinanet'}
CONFIGS.update({name: CONFIGS[base] for name, base in SHIPPED.items()})
SCOPES.update({name: SCOPES[base] for name, base in SHIPPED.items()})
DET_IMAGE_SIZE = {'retinanet_shipped': 512}
VARIANTS = ('student', 'teacher', 'folded', 'joint', 'mmdist', 'naive')


def _load(path_or_text: str) -> Config:
    if path_or_text.endswith('.py'):
        return Config.fromfile(os.path.join(REPO, path_or_text))
    return Config.fromstring(path_or_text, '.py')


def build_distiller(name: str, data_root: str):
    """The shipped config's distiller with a tiny student (width 8) and teacher (16), and
    the stock teacher (BatchNorms not folded) with the distiller's teacher weights."""
    cfg = _load(CONFIGS[name])
    if name == 'retinanet_shipped':
        student = Config(dict(model=cfg.model.student))
        student.model.backbone.init_cfg = None  # nothing is downloaded
        teacher = _load(f"_base_ = ['{cfg.model.teacher_cfg}']\n")
        teacher.model.backbone.init_cfg = None
    elif name == 'retinanet':
        student = Config(dict(model=cfg.model.student))
        student.merge_from_dict({'model': tiny_retinanet(8, 16)})
        teacher = _load("_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']\n")
        teacher.merge_from_dict({'model': tiny_retinanet(16, 32)})
    elif name == 'faster_rcnn':
        student = Config(dict(model=cfg.model.student))
        tiny_two_stage(student, 8, 16)
        teacher = _load(f"_base_ = ['{cfg.model.teacher_cfg}']\n")
        tiny_two_stage(teacher, 16, 32)
        # The synthetic boxes have no masks, which the naive teacher's loss would need:
        # benchmark a Cascade R-CNN teacher (the mask branch never runs in mmdist anyway).
        teacher.model.roi_head.mask_roi_extractor = None
        teacher.model.roi_head.mask_head = None
    else:
        student = Config(dict(model=cfg.model.student))
        shrink_segmentor(student, 8)
        teacher = _load(f"_base_ = ['{cfg.model.teacher_cfg}']\n")
        shrink_segmentor(teacher, 16)
    teacher_file = os.path.join(data_root, f'teacher_{name}.py')
    teacher.dump(teacher_file)
    stock_teacher = build_teacher(teacher_file, None)
    teacher_ckpt = os.path.join(data_root, f'teacher_{name}.pth')
    torch.save(dict(state_dict=stock_teacher.state_dict()), teacher_ckpt)
    cfg.model.student = student.model
    cfg.model.teacher_cfg = teacher_file
    cfg.model.teacher_ckpt = teacher_ckpt
    with DefaultScope.overwrite_default_scope(SCOPES[name]):
        model = MODELS.build(cfg.model)
    model.init_weights()
    return model.train(), cfg, stock_teacher


def make_batch(name: str, cfg: Config, data_root: str, model, preprocess: bool = True) -> dict:
    """A batch of 2 synthetic images through the stock dataset pipeline (preprocessed for
    training, or raw)."""
    init_default_scope(SCOPES[name])
    if SCOPES[name] == 'mmdet':
        size = DET_IMAGE_SIZE.get(name, 128)
        make_coco_shapes(data_root, {'train': 2}, image_size=(size, size))
        from mmdet.registry import DATASETS
        dataset = cfg.train_dataloader.dataset
        dataset.update(data_root=data_root + '/', ann_file='annotations/instances_train.json',
                       data_prefix=dict(img='images/train/'),
                       metainfo=dict(classes=SHAPE_CLASSES))
        dataset.pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', scale=(size, size), keep_ratio=True),
            dict(type='PackDetInputs')
        ]
    else:
        make_cityscapes_shapes(data_root, {'train': 2}, image_size=(64, 128))
        from mmseg.registry import DATASETS
        dataset = cfg.train_dataloader.dataset
        dataset.update(data_root=data_root)
        dataset.pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')
        ]
    built = DATASETS.build(dataset)
    raw = pseudo_collate([built[0], built[1]])
    return model.data_preprocessor(raw, True) if preprocess else raw


def naive_loss(model, teacher, data) -> dict:
    """Distillation where the (stock) teacher runs its whole loss-mode forward (MMRazor 1.x
    style)."""
    inputs, samples = data['inputs'], data['data_samples']
    with torch.no_grad():
        t_inputs = model.teacher_inputs(inputs, samples)
        if hasattr(teacher, 'decode_head'):
            watched = {'decode': teacher.decode_head.conv_seg}
            if model.loss_aux is not None:
                watched['aux'] = teacher.auxiliary_head.conv_seg
        elif getattr(model, 'two_stage', False):
            watched = {'neck': teacher.neck}
        else:
            watched = {'logits': teacher.bbox_head}
        with record_calls(watched) as t_rec:
            teacher.loss(t_inputs, samples)
    student = model.student
    if hasattr(student, 'decode_head'):
        with record_calls({'decode': student.decode_head.conv_seg,
                           'aux': student.auxiliary_head.conv_seg}) as s_rec:
            losses = student.loss(inputs, samples)
        aux = model.loss_aux is not None
        losses.update(model.logit_losses(s_rec['decode'].output, t_rec['decode'].output,
                                         s_rec['aux'].output if aux else None,
                                         t_rec['aux'].output if aux else None, samples))
    elif model.two_stage:
        with record_calls({'rois': student.roi_head.bbox_roi_extractor,
                           'logits': student.roi_head.bbox_head}) as s_rec:
            losses = student.loss(inputs, samples)
        with torch.no_grad():  # same RoIs needed: classify them on the recorded features
            t_logits = model.roi_class_logits(teacher.roi_head, t_rec['neck'].output,
                                              s_rec['rois'].args[1])
        losses['loss_dist_cls'] = model.loss_cls(s_rec['logits'].output[0], t_logits)
    else:
        with record_calls({'logits': student.bbox_head}) as s_rec:
            losses = student.loss(inputs, samples)
        losses['loss_dist_cls'] = model._dense_loss(s_rec['logits'].output[0],
                                                    t_rec['logits'].output[0], samples)
    return losses


def total(losses: dict) -> torch.Tensor:
    return sum(v for k, vs in losses.items() if 'loss' in k
               for v in (vs if isinstance(vs, list) else [vs]))


def make_variants(name: str) -> dict:
    """variant name -> a function running one step of it, on a fresh model and batch."""
    with tempfile.TemporaryDirectory() as tmp:
        model, cfg, stock_teacher = build_distiller(name, tmp)
        data = make_batch(name, cfg, tmp, model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def train_step(loss_fn):
        optimizer.zero_grad()
        total(loss_fn()).backward()
        optimizer.step()

    def teacher_forward(teacher):
        with torch.no_grad():
            teacher(model.teacher_inputs(data['inputs'], data['data_samples']),
                    data['data_samples'], mode='tensor')

    def teacher_forward_and_student_loss():
        teacher_forward(stock_teacher)
        return model.student.loss(data['inputs'], data['data_samples'])

    return {
        'student': lambda: train_step(lambda: model.student.loss(data['inputs'],
                                                                 data['data_samples'])),
        'teacher': lambda: teacher_forward(stock_teacher),
        'folded': lambda: teacher_forward(model.teacher),
        'joint': lambda: train_step(teacher_forward_and_student_loss),
        'mmdist': lambda: train_step(lambda: model.loss(data['inputs'], data['data_samples'])),
        'naive': lambda: train_step(lambda: naive_loss(model, stock_teacher, data)),
    }


def benchmark(name: str, repeat: int) -> dict:
    variants = make_variants(name)
    times = {key: [] for key in variants}
    for key, fn in variants.items():  # warm-up
        fn()
    for _ in range(repeat):
        for key, fn in variants.items():  # interleaved: load changes hit all alike
            torch.manual_seed(0)
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(t) for key, t in times.items()}


def measure_peak(name: str, variant: str) -> int:
    """Run in a fresh process: peak resident memory of one step of ``variant`` above the
    memory held before it (model, gradients and optimizer state after a warm-up step)."""
    step = make_variants(name)[variant]
    step()
    return extra_peak_bytes(step)


def benchmark_memory(name: str) -> dict:
    """Peak extra memory of one step of each variant, each in a fresh process."""
    # glibc then returns every freed block above 64 KiB to the OS at once, so resident
    # memory follows live tensors instead of the heap cache.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
    peaks = {}
    for variant in VARIANTS:
        out = subprocess.run([sys.executable, __file__, '--peak', name, variant],
                             capture_output=True, text=True, check=True, env=env)
        peaks[variant] = json.loads(out.stdout.strip().splitlines()[-1])['extra_peak']
    return peaks


def benchmark_validation(name: str, repeat: int) -> dict:
    """Median time of one validation batch: plain loop vs paired teacher-student loop."""
    with tempfile.TemporaryDirectory() as tmp:
        model, cfg, _ = build_distiller(name, tmp)
        raw = make_batch(name, cfg, tmp, model, preprocess=False)
    model.eval()

    def plain():
        with torch.no_grad():
            model.val_step(raw)

    def paired():
        with torch.no_grad():
            data = model.data_preprocessor(raw, False)
            model(**data, mode='predict')
            model.predict_teacher(data['inputs'], data['data_samples'])

    times = {'plain': [], 'paired': []}
    plain(), paired()
    for _ in range(repeat):
        for key, fn in (('plain', plain), ('paired', paired)):
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(t) for key, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=7)
    parser.add_argument('--models', nargs='+', choices=list(CONFIGS),
                        default=[name for name in CONFIGS if name not in SHIPPED])
    parser.add_argument('--memory', action='store_true',
                        help='also measure the peak memory of one step of each variant')
    parser.add_argument('--peak', nargs=2, metavar=('MODEL', 'VARIANT'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # no init_weights report
    if args.peak:
        print(json.dumps(dict(extra_peak=measure_peak(*args.peak))))
        return
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'{os.cpu_count()} cores; median of {args.repeat} interleaved steps')
    print(f'{"model":<18}' + ''.join(f'{k:>10}' for k in VARIANTS) +
          f'{"mmdist/(s+t)":>14}{"mmdist/(s+f)":>14}{"mmdist/joint":>14}{"mmdist/naive":>14}')
    for name in args.models:
        t = benchmark(name, args.repeat)
        print(f'{name:<18}' + ''.join(f'{t[k] * 1e3:>8.1f}ms' for k in VARIANTS) +
              f'{t["mmdist"] / (t["student"] + t["teacher"]):>14.3f}'
              f'{t["mmdist"] / (t["student"] + t["folded"]):>14.3f}'
              f'{t["mmdist"] / t["joint"]:>14.3f}{t["mmdist"] / t["naive"]:>14.3f}')
    print(f'\n{"validation":<18}{"plain":>10}{"paired":>10}{"paired/plain":>14}')
    for name in args.models:
        t = benchmark_validation(name, args.repeat)
        print(f'{name:<18}{t["plain"] * 1e3:>8.1f}ms{t["paired"] * 1e3:>8.1f}ms'
              f'{t["paired"] / t["plain"]:>14.3f}')
    if args.memory:
        print(f'\n{"peak extra memory":<18}' + ''.join(f'{k:>10}' for k in VARIANTS) +
              f'{"mmdist/student":>16}{"mmdist/joint":>14}')
        for name in args.models:
            m = benchmark_memory(name)
            print(f'{name:<18}' + ''.join(f'{m[k] / 2**20:>8.1f}MB' for k in VARIANTS) +
                  f'{m["mmdist"] / m["student"]:>16.3f}{m["mmdist"] / m["joint"]:>14.3f}')


if __name__ == '__main__':
    main()
