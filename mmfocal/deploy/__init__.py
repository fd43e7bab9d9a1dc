"""Deployment of mmfocal's detectors and segmentors through mmdeploy to ONNX Runtime.

Needs the ``deploy`` extra: mmdeploy 1.3.1 (installed with ``--no-deps``), onnx,
onnxruntime and aenum; docs/en/deployment.md has the commands. ``import mmfocal`` does not
import this package.
"""
try:
    import mmdeploy  # noqa: F401
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
except ImportError as exc:
    raise ImportError(
        f'mmfocal.deploy needs mmdeploy, onnx and onnxruntime ({exc}); install them with '
        '"pip install -e .[deploy]" and "pip install --no-deps mmdeploy==1.3.1" '
        '(docs/en/deployment.md)') from exc

from .evaluate import evaluate  # noqa: E402
from .export import Deployment, DeploymentError, ImageCheck, deploy, describe  # noqa: E402

__all__ = ['Deployment', 'DeploymentError', 'ImageCheck', 'deploy', 'describe', 'evaluate']
