"""``offload.consumers``: the import path of ``Consumer`` before events became a package; the code is in
``offload.events.consumers``."""

from offload.events.consumers import Consumer, ConsumerNotFound

__all__ = ["Consumer", "ConsumerNotFound"]
