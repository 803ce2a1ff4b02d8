"""nextscale.ar: the next-scale AAR transformer, the next-token baseline, sampling, conditioning."""
from .config import ARConfig
from .next_scale import AAR
from .next_token import NextTokenAR
from .sampling import sample_logits

__all__ = ["ARConfig", "AAR", "NextTokenAR", "sample_logits"]
