"""Matching: indexes that find known content among uploads (PDQ via FAISS, faces)."""
