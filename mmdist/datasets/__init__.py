# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
from .imagenet_shapes import imagenet_shapes_synsets, make_imagenet_shapes
from .synthetic import (SHAPE_CLASSES, cityscapes_shapes_classes, make_cityscapes_shapes,
                        make_coco_shapes)

__all__ = [
    'SHAPE_CLASSES', 'cityscapes_shapes_classes', 'imagenet_shapes_synsets',
    'make_cityscapes_shapes', 'make_coco_shapes', 'make_imagenet_shapes'
]
