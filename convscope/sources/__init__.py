"""Frame sources: webcams, video files, network streams with reconnect, images, folders, a demo.

``open_source(spec)`` returns a :class:`Source`: iterate it for every frame, or poll
:meth:`Source.latest` from a live UI. See :func:`open_source` for the spec forms.
"""

from convscope.sources.masking import mask_secrets
from convscope.sources.open import OPENERS, open_source
from convscope.sources.source import Source
from convscope.sources.types import Frame, SourceInfo, SourceState

__all__ = ["OPENERS", "Frame", "Source", "SourceInfo", "SourceState", "mask_secrets", "open_source"]
