"""mosa: text to 3D human motion with scalable autoregressive modelling (MoSa)."""

__version__ = "0.1.0"
