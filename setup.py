"""Packaging for mmscope.

mmcv 2.1.0 must be built from source with its ops before this package is
installed, and ``tools/setup_env.sh`` does that. pip cannot build it inside
an isolated build environment because its setup.py imports torch.
"""
from pathlib import Path

from setuptools import find_packages, setup


def read_version() -> str:
    """Read ``__version__`` from ``mmscope/version.py`` without importing it."""
    namespace: dict = {}
    version_file = Path(__file__).parent / 'mmscope' / 'version.py'
    exec(version_file.read_text(), namespace)
    return namespace['__version__']


setup(
    name='mmscope',
    version=read_version(),
    description='MambaScope coarse-to-fine Vision Mamba backbones for '
    'mmsegmentation and mmdetection',
    long_description=Path('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    python_requires='>=3.8',
    packages=find_packages(include=['mmscope', 'mmscope.*']),
    install_requires=[
        'torch>=2.1',
        'numpy',
        'mmengine>=0.10.0,<0.11',
        'mmcv>=2.1.0,<2.2.0',
        'mmsegmentation==1.2.2',
        'mmdet>=3.3.0,<3.4',
        # tools/analysis/sweep_threshold.py draws its Pareto plot.
        'matplotlib',
        # mmsegmentation 1.2.2 imports these at import time without
        # declaring them.
        'ftfy',
        'regex',
    ],
    extras_require={
        # Fused CUDA kernels; they need a CUDA toolkit to build.
        'cuda': ['mamba-ssm', 'causal-conv1d'],
        'tests': ['pytest', 'hypothesis'],
    },
    license='Apache-2.0',
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Image Recognition',
    ],
)
