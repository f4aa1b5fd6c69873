"""clinicpress: verify a canonical health article and publish it to web, handout and newsletter."""

__version__ = "0.1.0"
