"""Errors a user can cause. The CLI prints them as one line and exits non-zero."""


class HollowError(Exception):
    """A problem with the user's input or environment, described in one line."""


class SceneError(HollowError):
    """A scene folder, transforms file or image that cannot be used."""


class BackendError(HollowError):
    """A Taichi backend that was asked for but is not available."""


class RunError(HollowError):
    """A run folder, checkpoint or configuration that cannot be used."""


class Interrupted(HollowError):
    """Training stopped by a signal after saving a checkpoint; exit with 128 + the signal's number."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.exit_code = 128 + signal_number


class ViewerError(HollowError):
    """A viewer that cannot start: its library is not installed, or its port is taken."""


class CaptureError(HollowError):
    """Photos, a video or a COLMAP model that `process` cannot turn into a scene."""
