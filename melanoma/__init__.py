"""Melanoma triage: a from-scratch ResNet50 on HAM10000 at 75x100, its training, evaluation,
inference, Grad-CAM explanations and a Streamlit app."""

__version__ = "0.1.0"
