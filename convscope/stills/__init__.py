"""Still-image work shared by ``gradcam``, ``guided-backprop`` and ``explain``: inputs, batching, outputs."""
