# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""What the measurement trains: teachers, students (a demo config plus ``--cfg-options``)
and the tables they form. Schedules and seeds are those of the demo configs (students 6
epochs, teachers 12; DINO students 12, its teacher 24); every option value was fixed before
any result was seen."""
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple


@dataclass(frozen=True)
class Teacher:
    """A teacher config of ``configs/demo/``, trained once (seed 0) and cached."""

    name: str
    config: str


@dataclass(frozen=True)
class Run:
    """One student: a demo config, its options, and its teacher (``None``: alone)."""

    name: str
    label: str
    config: str
    teacher: Optional[str] = None
    options: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    """A results table: its teacher rows and student runs, in order."""

    name: str
    title: str
    teachers: Tuple[str, ...]
    runs: Tuple[str, ...]


TEACHERS: Dict[str, Teacher] = {t.name: t for t in (
    Teacher('retinanet', 'det_teacher.py'),
    Teacher('rtmdet', 'det_rtmdet_teacher.py'),
    Teacher('yolox', 'det_yolox_teacher.py'),
    Teacher('dino', 'det_dino_teacher.py'),
)}

RUNS: Dict[str, Run] = {r.name: r for r in (
    Run('rtmdet', 'RTMDet student alone', 'det_rtmdet_student.py'),
    Run('rtmdet_dist', 'RTMDet <- RTMDet, DIST (direct)', 'det_rtmdet_student_dist.py',
        'rtmdet'),
    Run('yolox', 'YOLOX student alone', 'det_yolox_student.py'),
    Run('yolox_joint', "YOLOX <- YOLOX, DIST score='joint'", 'det_yolox_student_dist.py',
        'yolox'),
    Run('yolox_class', "YOLOX <- YOLOX, DIST score='class'", 'det_yolox_student_dist.py',
        'yolox', ('model.score=class', )),
    Run('retina_cross', 'RTMDet <- RetinaNet, cross-head DIST', 'det_rtmdet_student_cross.py',
        'retinanet'),
    Run('yolox_cross', 'RTMDet <- YOLOX, cross-head DIST', 'det_rtmdet_student_yolox.py',
        'yolox'),
    Run('yolox_direct', 'RTMDet <- YOLOX, direct DIST (joint score)',
        'det_rtmdet_student_yolox.py', 'yolox', ('model.cross_head=False', )),
    Run('dino', 'DINO student alone', 'det_dino_student.py'),
    Run('dino_dist', 'DINO <- DINO, DIST (matched queries)', 'det_dino_student_dist.py', 'dino'),
    Run('dino_kd', 'DINO <- DINO, KD (matched queries)', 'det_dino_student_kd.py', 'dino'),
    Run('dino_dist_box', 'DINO <- DINO, DIST + box L1 5 / GIoU 2', 'det_dino_student_dist.py',
        'dino', ('model.loss_bbox.type=mmdet.L1Loss', 'model.loss_bbox.loss_weight=5.0',
                 'model.loss_iou.type=mmdet.GIoULoss', 'model.loss_iou.loss_weight=2.0')),
)}

TABLES: Dict[str, Table] = {t.name: t for t in (
    Table('rtmdet', 'RTMDet student alone vs DIST from an RTMDet teacher', ('rtmdet', ),
          ('rtmdet', 'rtmdet_dist')),
    Table('yolox', 'YOLOX student alone vs DIST on the joint or the class scores',
          ('yolox', ), ('yolox', 'yolox_joint', 'yolox_class')),
    Table('cross', 'heterogeneous pairs: RTMDet student alone vs cross-head and direct DIST',
          ('retinanet', 'yolox'), ('rtmdet', 'retina_cross', 'yolox_cross', 'yolox_direct')),
    Table('detr', 'DINO student alone vs DIST and KD on Hungarian-matched queries',
          ('dino', ), ('dino', 'dino_dist', 'dino_kd')),
    Table('detr_box', 'DINO student alone vs DIST without and with box terms (L1 + GIoU to '
          'the teacher\'s boxes)', ('dino', ), ('dino', 'dino_dist', 'dino_dist_box')),
)}
