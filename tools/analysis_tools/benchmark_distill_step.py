# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""One training step, side by side: student alone, teacher forward, mmdist, naive.

    python tools/analysis_tools/benchmark_distill_step.py [--device cuda] [--amp bf16]
        [--repeat 7] [--models retinanet ...]

For a tiny RetinaNet, Faster R-CNN (Cascade R-CNN teacher: the shipped Cascade Mask
R-CNN without its mask branch, as the synthetic data has no masks), RTMDet-s (RTMDet-l
teacher), cross-head RetinaNet (GFL teacher), DINO-4scale (DINO-5scale Swin teacher) and
PSPNet (DeepLabV3 teacher) built from the
shipped distillation configs (shrunk with ``mmdist.testing``) on a synthetic batch of 2
images, it times (median of ``--repeat``, all variants interleaved):

- ``student``: the student's own loss, backward and SGD step;
- ``teacher``: the stock teacher's plain tensor-mode forward (``mode='tensor'``) under
  no_grad, as mmdet/mmseg build it;
- ``folded``: the same forward of the distiller's teacher, whose BatchNorms mmdist folds
  into its convolutions (``teacher_fuse_conv_bn=True``, the default);
- ``joint``: the student's step with the stock teacher's forward run inside it, first (as
  the distillers run it) and without any distillation loss;
- ``mmdist``: the distiller's training step (student step + what distillation needs);
- ``naive``: a distillation step in which the stock teacher runs its full loss-mode
  forward (assigners, samplers, RPN, losses), as MMRazor 1.x's recorders do, then the
  same distillation losses (cross-head: its classification branch runs again on its
  recorded neck output, as the distiller runs it; DINO: the teacher's loss() in training
  mode with its BatchNorms in eval mode, as MMRazor 1.x runs a teacher, denoising queries
  and matcher included);

and prints ``mmdist / (student + teacher)``, ``mmdist / (student + folded)``, ``mmdist /
joint`` and ``mmdist / naive``. Stock and folded teacher have the same weights. For the
cross-head models a further line times the cross-head part alone: the adapters and the
teacher's classifier on the student's class-branch features, forward and backward.
``--models retinanet_shipped faster_rcnn_shipped pspnet_shipped rtmdet_shipped
crosshead_shipped dino_shipped`` (not in the default run: seconds to minutes per step on a
CPU) time the shipped configs' own models without pretrained weights: RetinaNet-R50 <-
RetinaNet-X101-64x4d (512 x 512 images), Faster R-CNN-R50 <- Cascade R-CNN-X101-64x4d
(800 x 1216), PSPNet-R18 <- DeepLabV3-R101 (the 512 x 1024 Cityscapes crop), RTMDet-s <-
RTMDet-l (640 x 640), cross-head RetinaNet-R50 <- GFL-R101 (512 x 512) and DINO-4scale-R50
(900 queries) <- DINO-5scale-Swin-L (512 x 512). ``--device cuda`` runs on the GPU
(timings synchronised, memory as the allocator's peak); ``--amp fp16|bf16`` runs each forward and loss under autocast, as
``AmpOptimWrapper`` does. The distillation loss is compiled unless ``MMDIST_COMPILE=0``.
A second table times one validation batch: the plain loop's work (preprocess + student
``predict``) against the paired loop's (the same + the teacher's ``predict`` on the same
preprocessed batch). ``--memory`` adds a third table: the peak memory of one step of each
variant above what the process held before it (model, gradients, optimizer state, batch;
on the CPU each variant in a fresh process).
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
from typing import Callable, Optional

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope, init_default_scope
from torch.nn.modules.batchnorm import _BatchNorm

from mmdist.datasets import SHAPE_CLASSES, make_cityscapes_shapes, make_coco_shapes
from mmdist.models.distillers.detection import (CrossHead, DenseDirect, HungarianQueries,
                                                RoIHeads)
from mmdist.models.utils.recorder import record_calls
from mmdist.models.utils.teacher import RANDOM_TEACHER, build_teacher
from mmdist.registry import MODELS
from mmdist.testing import init_weights_of_unowned_parameters, shrink_segmentor, tiny_two_stage
from mmdist.testing._detection import DENSE_PAIRS, DETR_PAIRS, DINO_CONFIG
from memory import extra_peak_bytes  # tools/analysis_tools/memory.py

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: Dense models: their pair in ``mmdist.testing._detection.DENSE_PAIRS`` (shipped config,
#: tiny student and teacher).
DENSE = {'retinanet': 'retinanet', 'rtmdet': 'rtmdet', 'crosshead': 'crosshead_gfl_retinanet'}
#: DETR-family models: their pair in ``mmdist.testing._detection.DETR_PAIRS``.
DETR = {'dino': 'dino'}
CONFIGS = {
    'faster_rcnn':
    'configs/dist_det/dist_cascade-mask-rcnn-x101-64x4d_faster-rcnn-r50_fpn_2x_coco.py',
    'pspnet': 'configs/dist_seg/dist_deeplabv3-r101-d8_pspnet-r18-d8_8xb2-40k_cityscapes-'
              '512x1024.py',
    **{name: f'configs/dist_det/{DENSE_PAIRS[pair][0]}' for name, pair in DENSE.items()},
    'dino': f'configs/dist_det/{DINO_CONFIG}',
}
SCOPES = {name: 'mmseg' if name == 'pspnet' else 'mmdet' for name in CONFIGS}
#: Not in the default run (seconds to minutes per step on a CPU): the shipped configs' own
#: models.
SHIPPED = {f'{name}_shipped': name
           for name in ('retinanet', 'faster_rcnn', 'pspnet', 'rtmdet', 'crosshead', 'dino')}
CONFIGS.update({name: CONFIGS[base] for name, base in SHIPPED.items()})
SCOPES.update({name: SCOPES[base] for name, base in SHIPPED.items()})
#: (height, width) of the synthetic images.
IMAGE_SIZE = {'retinanet': (128, 128), 'faster_rcnn': (128, 128), 'pspnet': (64, 128),
              'rtmdet': (128, 128), 'crosshead': (128, 128),
              'retinanet_shipped': (512, 512), 'faster_rcnn_shipped': (800, 1216),
              'pspnet_shipped': (512, 1024), 'rtmdet_shipped': (640, 640),
              'crosshead_shipped': (512, 512), 'dino': (128, 128), 'dino_shipped': (512, 512)}
VARIANTS = ('student', 'teacher', 'folded', 'joint', 'mmdist', 'naive')
AMP_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}


def _load(path_or_text: str) -> Config:
    if path_or_text.endswith('.py'):
        return Config.fromfile(os.path.join(REPO, path_or_text))
    return Config.fromstring(path_or_text, '.py')


def build_distiller(name: str, data_root: str):
    """The shipped config's distiller with a tiny student (width 8) and teacher (16), and
    the stock teacher (BatchNorms not folded) with the distiller's teacher weights."""
    cfg = _load(CONFIGS[name])
    if name in SHIPPED:
        student = Config(dict(model=cfg.model.student))
        teacher = _load(f"_base_ = ['{cfg.model.teacher_cfg}']\n")
        for model in (student.model, teacher.model):  # nothing is downloaded
            model.backbone.init_cfg = None
            if 'pretrained' in model:
                model.pretrained = None
        if name == 'faster_rcnn_shipped':  # no masks in the synthetic data (see below)
            teacher.model.roi_head.mask_roi_extractor = None
            teacher.model.roi_head.mask_head = None
        if name == 'pspnet_shipped':
            student.model.data_preprocessor.size = IMAGE_SIZE[name]
            teacher.model.data_preprocessor.size = IMAGE_SIZE[name]
    elif name in DENSE or name in DETR:
        pairs, pair = (DENSE_PAIRS, DENSE[name]) if name in DENSE else (DETR_PAIRS, DETR[name])
        _, tiny_student, teacher_base, tiny_teacher = pairs[pair]
        student = Config(dict(model=cfg.model.student))
        student.merge_from_dict({'model': tiny_student})
        teacher = _load(f"_base_ = ['{teacher_base}']\n")
        teacher.merge_from_dict({'model': tiny_teacher})
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
    stock_teacher = build_teacher(teacher_file, RANDOM_TEACHER)
    if name in DETR or SHIPPED.get(name) in DETR:
        # DINO's level_embed is created uninitialised (at times NaN): mmdet's init for it,
        # PyTorch's for the layers (nothing is downloaded: no init_cfg above).
        init_weights_of_unowned_parameters(stock_teacher)
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
    size = IMAGE_SIZE[name]
    if SCOPES[name] == 'mmdet':
        make_coco_shapes(data_root, {'train': 2}, image_size=size)
        from mmdet.registry import DATASETS
        dataset = cfg.train_dataloader.dataset
        dataset.update(data_root=data_root + '/', ann_file='annotations/instances_train.json',
                       data_prefix=dict(img='images/train/'),
                       metainfo=dict(classes=SHAPE_CLASSES))
        dataset.pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', scale=size[::-1], keep_ratio=True),
            dict(type='PackDetInputs')
        ]
    else:
        make_cityscapes_shapes(data_root, {'train': 2}, image_size=size)
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
    student = model.student
    if hasattr(student, 'decode_head'):
        with torch.no_grad():
            watched = {'decode': teacher.decode_head.conv_seg}
            if model.loss_aux is not None:
                watched['aux'] = teacher.auxiliary_head.conv_seg
            with record_calls(watched) as t_rec:
                teacher.loss(model.teacher_inputs(inputs, samples), samples)
        with record_calls({'decode': student.decode_head.conv_seg,
                           'aux': student.auxiliary_head.conv_seg}) as s_rec:
            losses = student.loss(inputs, samples)
        aux = model.loss_aux is not None
        losses.update(model.logit_losses(s_rec['decode'].output, t_rec['decode'].output,
                                         s_rec['aux'].output if aux else None,
                                         t_rec['aux'].output if aux else None, samples))
        return losses
    # Detection: the teacher's whole loss() with what the unit reads of it recorded.
    unit = model.unit
    direct = isinstance(unit, DenseDirect)
    if isinstance(unit, HungarianQueries):
        return naive_query_loss(model, teacher, data)
    with torch.no_grad():
        watched = {'head': teacher.bbox_head} if direct else {'neck': teacher.neck}
        with record_calls(watched) as t_rec:
            teacher.loss(model.teacher_inputs(inputs, samples), samples)
        if direct:  # the class logits of its full head forward
            maps = unit.readers[1].output_logits(t_rec['head'].output, unit.pairs.teacher,
                                                 unit.score)
            teacher_out = dict(rows=unit.rows.rows(maps), sizes=[m.shape[-2:] for m in maps])
        elif isinstance(unit, RoIHeads):  # the student's RoIs are classified later
            teacher_out = t_rec['neck'].output
        else:  # cross-head: its classification branch on its recorded features
            teacher_out = unit.teacher_forward(teacher, t_rec['neck'].output, samples)
    with record_calls(unit.student_records(student)) as s_rec:
        losses = student.loss(inputs, samples)
    losses.update(unit.losses(student, teacher, s_rec, teacher_out, samples, model.loss_cls))
    return losses


def naive_query_loss(model, teacher, data) -> dict:
    """:func:`naive_loss` of a DETR-family pair: the teacher's whole loss() as MMRazor 1.x
    runs it (training mode but for its BatchNorms: its denoising queries, matcher and
    losses), then the query unit on the final layer of its matching queries."""
    inputs, samples = data['inputs'], data['data_samples']
    unit, student = model.unit, model.student
    teacher.train()
    for module in teacher.modules():
        if isinstance(module, _BatchNorm):
            module.eval()
    try:
        with torch.no_grad(), record_calls({'head': teacher.bbox_head}) as t_rec:
            teacher.loss(model.teacher_inputs(inputs, samples), samples)
    finally:
        teacher.eval()
    logits, boxes = (out[-1, :, -teacher.num_queries:] for out in t_rec['head'].output)
    with record_calls(unit.student_records(student)) as s_rec:
        losses = student.loss(inputs, samples)
    losses.update(unit.losses(student, teacher, s_rec, dict(logits=logits, boxes=boxes),
                              samples, model.loss_cls))
    return losses


def total(losses: dict) -> torch.Tensor:
    return sum(v for k, vs in losses.items() if 'loss' in k
               for v in (vs if isinstance(vs, list) else [vs]))


def synchronize(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def make_variants(name: str, device: str = 'cpu', amp: Optional[str] = None) -> dict:
    """variant name -> a function running one step of it, on a fresh model and batch."""
    with tempfile.TemporaryDirectory() as tmp:
        model, cfg, stock_teacher = build_distiller(name, tmp)
        model.to(device), stock_teacher.to(device)
        data = make_batch(name, cfg, tmp, model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def autocast():
        return torch.autocast(device, dtype=AMP_DTYPES.get(amp), enabled=amp is not None)

    def train_step(loss_fn):
        optimizer.zero_grad()
        with autocast():
            loss = total(loss_fn())
        loss.backward()
        optimizer.step()

    def teacher_forward(teacher):
        with torch.no_grad(), autocast():
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


def timed(fn: Callable, device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def benchmark(name: str, repeat: int, device: str, amp: Optional[str]) -> dict:
    variants = make_variants(name, device, amp)
    times = {key: [] for key in variants}
    for key, fn in variants.items():  # warm-up (and compiling)
        fn(), fn()
    for _ in range(repeat):
        for key, fn in variants.items():  # interleaved: load changes hit all alike
            torch.manual_seed(0)
            times[key].append(timed(fn, device))
    return {key: statistics.median(t) for key, t in times.items()}


def measure_peak(name: str, variant: str, amp: Optional[str]) -> int:
    """Run in a fresh process: peak resident memory of one CPU step of ``variant`` above
    the memory held before it (model, gradients and optimizer state after a warm-up)."""
    step = make_variants(name, 'cpu', amp)[variant]
    step()
    return extra_peak_bytes(step)


def benchmark_memory(name: str, device: str, amp: Optional[str]) -> dict:
    """Peak extra memory of one step of each variant (CPU: each in a fresh process)."""
    peaks = {}
    if device == 'cuda':
        variants = make_variants(name, device, amp)
        for variant, step in variants.items():
            step()
            synchronize(device)
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            step()
            synchronize(device)
            peaks[variant] = torch.cuda.max_memory_allocated() - base
        return peaks
    # glibc then returns every freed block above 64 KiB to the OS at once, so resident
    # memory follows live tensors instead of the heap cache.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
    for variant in VARIANTS:
        out = subprocess.run([sys.executable, __file__, '--peak', name, variant] +
                             (['--amp', amp] if amp else []),
                             capture_output=True, text=True, check=True, env=env)
        peaks[variant] = json.loads(out.stdout.strip().splitlines()[-1])['extra_peak']
    return peaks


def benchmark_cross_head(name: str, repeat: int, device: str) -> Optional[float]:
    """Median time of the cross-head part of a step (the adapters and the teacher's
    classifier on the student's class-branch features of one batch, forward and backward),
    or ``None`` for a model without cross-head distillation."""
    if not _load(CONFIGS[name]).model.get('cross_head', False):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        model, cfg, _ = build_distiller(name, tmp)
        model.to(device)
        data = make_batch(name, cfg, tmp, model)
    unit = model.unit
    assert isinstance(unit, CrossHead), type(unit).__name__
    with record_calls(unit.student_records(model.student)) as records:
        model.student.loss(data['inputs'], data['data_samples'])
    features = [f.detach().requires_grad_() for f in unit.student_features(records)]

    def step():
        torch.autograd.grad(sum(m.sum() for m in unit.cross_logits(model.teacher, features)),
                            features + list(unit.parameters()))

    step()
    return statistics.median(timed(step, device) for _ in range(repeat))


def benchmark_validation(name: str, repeat: int, device: str) -> dict:
    """Median time of one validation batch (fp32): plain loop vs paired teacher-student
    loop."""
    with tempfile.TemporaryDirectory() as tmp:
        model, cfg, _ = build_distiller(name, tmp)
        model.to(device)
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
            times[key].append(timed(fn, device))
    return {key: statistics.median(t) for key, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--amp', choices=list(AMP_DTYPES),
                        help='forward and losses under autocast in this dtype')
    parser.add_argument('--repeat', type=int, default=7)
    parser.add_argument('--models', nargs='+', choices=list(CONFIGS),
                        default=[name for name in CONFIGS if name not in SHIPPED])
    parser.add_argument('--memory', action='store_true',
                        help='also measure the peak memory of one step of each variant')
    parser.add_argument('--peak', nargs=2, metavar=('MODEL', 'VARIANT'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # no init_weights report
    if args.peak:
        print(json.dumps(dict(extra_peak=measure_peak(*args.peak, args.amp))))
        return
    device_name = (torch.cuda.get_device_name() if args.device == 'cuda' else
                   f'CPU, {torch.get_num_threads()} threads, {os.cpu_count()} cores')
    print(f'torch {torch.__version__}, {device_name}, {args.amp or "fp32"}; median of '
          f'{args.repeat} interleaved steps; '
          f'MMDIST_COMPILE={os.environ.get("MMDIST_COMPILE", "1 (default)")}')
    print(f'{"model":<20}' + ''.join(f'{k:>10}' for k in VARIANTS) +
          f'{"mmdist/(s+t)":>14}{"mmdist/(s+f)":>14}{"mmdist/joint":>14}{"mmdist/naive":>14}')
    for name in args.models:
        try:
            t = benchmark(name, args.repeat, args.device, args.amp)
        except RuntimeError as err:  # e.g. mmcv's CPU nms has no bfloat16 kernel
            print(f'{name:<20}failed: {str(err).splitlines()[0]}')
            continue
        print(f'{name:<20}' + ''.join(f'{t[k] * 1e3:>8.1f}ms' for k in VARIANTS) +
              f'{t["mmdist"] / (t["student"] + t["teacher"]):>14.3f}'
              f'{t["mmdist"] / (t["student"] + t["folded"]):>14.3f}'
              f'{t["mmdist"] / t["joint"]:>14.3f}{t["mmdist"] / t["naive"]:>14.3f}')
        cross = benchmark_cross_head(name, args.repeat, args.device)
        if cross is not None:
            print(f'{"  cross-head part":<20}{cross * 1e3:>8.1f}ms'
                  f'{cross / t["mmdist"]:>10.3f} of mmdist')
    print(f'\n{"validation (fp32)":<20}{"plain":>10}{"paired":>10}{"paired/plain":>14}')
    for name in args.models:
        t = benchmark_validation(name, args.repeat, args.device)
        print(f'{name:<20}{t["plain"] * 1e3:>8.1f}ms{t["paired"] * 1e3:>8.1f}ms'
              f'{t["paired"] / t["plain"]:>14.3f}')
    if args.memory:
        print(f'\n{"peak extra memory":<20}' + ''.join(f'{k:>10}' for k in VARIANTS) +
              f'{"mmdist/student":>16}{"mmdist/joint":>14}')
        for name in args.models:
            m = benchmark_memory(name, args.device, args.amp)
            print(f'{name:<20}' + ''.join(f'{m[k] / 2**20:>8.1f}MB' for k in VARIANTS) +
                  f'{m["mmdist"] / m["student"]:>16.3f}{m["mmdist"] / m["joint"]:>14.3f}')


if __name__ == '__main__':
    main()
