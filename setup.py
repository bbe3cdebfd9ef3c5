# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Packaging for mmdist.

``configs/`` and ``tools/`` are shipped inside the installed package under
``mmdist/.mim`` (as mmdet and mmseg do), so that other projects can inherit
``mmdist::`` configs and ``mim train mmdist ...`` finds the tools.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def read_version() -> str:
    namespace: dict = {}
    with open(osp.join(HERE, 'mmdist', 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'version.py', 'exec'), namespace)
    return namespace['__version__']


def parse_requirements(name: str) -> list:
    """Requirement lines of ``requirements/<name>.txt`` without comments."""
    path = osp.join(HERE, 'requirements', f'{name}.txt')
    with open(path, encoding='utf-8') as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return [line for line in lines if line]


def add_mim_extension() -> None:
    """Expose ``configs/``, ``tools/`` and ``model-index.yml`` under ``mmdist/.mim/``.

    Editable installs get symlinks (edits show up at once); builds of a wheel or
    sdist get copies.
    """
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'symlink'
    elif any(cmd in sys.argv for cmd in ('sdist', 'bdist_wheel', 'build', 'install')):
        mode = 'copy'
    else:
        return
    mim_path = osp.join(HERE, 'mmdist', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(HERE, name)
        dst = osp.join(mim_path, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_path), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmdist',
        version=read_version(),
        description='DIST knowledge distillation for OpenMMLab detectors and segmentors',
        long_description=open(osp.join(HERE, 'README.md'), encoding='utf-8').read(),
        long_description_content_type='text/markdown',
        license='Apache License 2.0',
        python_requires='>=3.8',
        packages=find_packages(include=('mmdist', 'mmdist.*')),
        include_package_data=True,
        package_data={'mmdist': ['.mim/model-index.yml', '.mim/configs/**/*', '.mim/tools/**/*']},
        install_requires=parse_requirements('runtime'),
        extras_require={
            'mim': parse_requirements('mminstall'),
            'tests': parse_requirements('tests'),
        },
        zip_safe=False,
    )
