# The demo's DIST student (configs/demo/seg_student_dist.py: DeepLabV3-R18-d8 of width 16,
# 500 iterations, DIST weight 1.0 on the decode logits and 0.4 on the auxiliary logits)
# with the SegFormer teacher of teacher_segformer.py. The teacher's logits (1/4) are
# resized to the student's (1/8); it has no auxiliary head, so the student's auxiliary
# logits are compared with the teacher's decode logits (docs/segmentation.md).
_base_ = ['../../../configs/demo/seg_student_dist.py']

model = dict(
    teacher_cfg='{{ fileDirname }}/teacher_segformer.py',
    # Written by run.py; pass another with --cfg-options model.teacher_ckpt=...
    teacher_ckpt='work_dirs/segformer_teacher/teacher.pth')
