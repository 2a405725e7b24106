"""Training and evaluation of reclaim's learned AI-image detector (``synthetic_image``)."""
