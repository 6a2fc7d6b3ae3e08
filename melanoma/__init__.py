"""Melanoma triage: a from-scratch ResNet50 on HAM10000, its training, evaluation, inference,
Grad-CAM explanations and a Streamlit app. The lab (`melanoma.lab`) holds what only helps decide
what ships."""

__version__ = "0.1.0"
