"""The two MediaPipe face models (BlazeFace short-range and the 468-point face mesh),
read from the mediapipe wheel's .tflite files and run by OpenCV's DNN module: loaded once
per process, shared by every thread, dropped when an engine is done with them.
`kinema.media.faces` finds and tracks faces with them."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from kinema.errors import EngineError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

_MODELS = {
    "detector": "modules/face_detection/face_detection_short_range.tflite",
    "mesh": "modules/face_landmark/face_landmark.tflite",
}


class _Model:
    """One model, run by OpenCV's DNN module (its TFLite importer reads MediaPipe's files;
    outputs match the LiteRT runtime's to ~1e-4), shared by the whole process. OpenCV is
    already loaded for the pictures, so the models add their weights and activations,
    ~5 MB, and not a second runtime library. A network is not safe to run from two
    threads at once, so every call holds the model's lock."""

    def __init__(self, path: Path) -> None:
        import cv2

        self.net = cv2.dnn.readNetFromTFLite(str(path))
        # Winograd convolutions are slower for these small layers: the mesh is 2.0 ms a
        # run with them off, 2.6 ms on (one thread), in the same memory.
        self.net.enableWinograd(False)
        self.outputs = self.net.getUnconnectedOutLayersNames()
        self.lock = threading.Lock()

    def __call__(self, tensor: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        import numpy as np

        # TFLite models take NHWC; OpenCV's importer expects the input as NCHW.
        blob = np.ascontiguousarray(tensor.transpose(2, 0, 1)[None], dtype=np.float32)
        with self.lock:
            self.net.setInput(blob)
            outputs = self.net.forward(self.outputs)
        return [np.asarray(output, np.float32) for output in outputs]


_loaded: dict[str, _Model] = {}
_load_lock = threading.Lock()


MODEL_HINT = (
    "run `kinema setup` (or `make install`), which installs the mediapipe 0.10.21 wheel "
    "(without its dependencies) that bundles it"
)


def _model_path(name: str) -> Path | None:
    spec = importlib.util.find_spec("mediapipe")
    origin = spec.origin if spec is not None else None
    path = Path(origin).parent / _MODELS[name] if origin else None
    return path if path is not None and path.is_file() else None


def model_missing() -> str | None:
    """Why the face models cannot be loaded (the file is missing), or None. Cheap: checks
    for the files without loading them."""
    for name in _MODELS:
        if _model_path(name) is None:
            return f"the face model file ({_MODELS[name]}) is missing: {MODEL_HINT}"
    return None


def model(name: str) -> _Model:
    model = _loaded.get(name)
    if model is not None:
        return model
    with _load_lock:
        if name not in _loaded:
            path = _model_path(name)
            if path is None:
                raise EngineError(
                    f"The face model file ({_MODELS[name]}) is missing: {MODEL_HINT}."
                )
            _loaded[name] = _Model(path)
        return _loaded[name]


def preload() -> None:
    """Load both models now (a worker's start-up), not on the first job's clock."""
    model("detector")
    model("mesh")


def release_models(*names: str) -> None:
    """Drop loaded networks (`names` of "detector", "mesh"; none: both): their weights
    and activation buffers, ~5 MB each once run. For an engine whose face work is all
    done before it encodes (the talking head, the speaking photo), or that only tracks a
    face it has found (dubbing: the mesh alone): x264's buffers then take that memory's
    place instead of adding to it. The next use loads a network again (~5 ms). A call
    still running on a dropped network keeps it until it returns."""
    with _load_lock:
        for name in names or tuple(_loaded):
            _loaded.pop(name, None)
