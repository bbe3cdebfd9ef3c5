# Calibration-aware DIST ("Distilling Calibrated Student from an Uncalibrated Teacher",
# arXiv 2302.11472): the student trains on CutMix-ed batches and the teacher sees the same
# mixed images (the teacher input is derived from the student's preprocessed batch).
# No paper number for this pair; see docs/segmentation.md.
_base_ = ['./dist_deeplabv3-r101-d8_pspnet-r18-d8_8xb2-40k_cityscapes-512x1024.py']

model = dict(
    student=dict(
        data_preprocessor=dict(
            type='mmdist.BatchMixSegDataPreprocessor',
            batch_augments=[dict(type='mmdist.SegBatchCutMix', alpha=1.0, prob=0.5)])))
