# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Export the student of a distillation checkpoint as a plain mmdet/mmseg model.

    python tools/model_converters/export_student.py CONFIG CHECKPOINT OUT_DIR [--name NAME]

writes OUT_DIR/NAME.pth (meta + student state_dict: no teacher, connectors, optimizer or
message hub) and OUT_DIR/NAME.py (the plain student config, without mmdist).
"""
import argparse

from mmdist.apis import export_student


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the distillation config of the run')
    parser.add_argument('checkpoint', help='a distillation checkpoint of that run')
    parser.add_argument('out_dir', help='where to write the student checkpoint and config')
    parser.add_argument('--name', help='output file stem (default: <checkpoint>_student)')
    args = parser.parse_args(argv)
    ckpt, cfg, dropped = export_student(args.config, args.checkpoint, args.out_dir, args.name)
    left_out = ', '.join(f'{prefix}.* ({n})' for prefix, n in sorted(dropped.items()))
    print(f'student checkpoint: {ckpt}\nstudent config:     {cfg}')
    print(f'left out: {left_out or "nothing"}; optimizer, schedulers and message hub not copied')


if __name__ == '__main__':
    main()
