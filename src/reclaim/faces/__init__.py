"""Faces: detection (dlib HOG/CNN, YuNet), landmarks, alignment and the descriptors of two
recognition networks (dlib, SFace); the model cache that makes loading them cheap."""
