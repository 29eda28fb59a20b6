"""Models and what they return: loading teachers and building students (the recipe's
`student` section), the encoder blocks of any transformers model, capturing hidden states and
attention, interventions on block outputs (IIT), the output dataclasses objectives read, and
an ONNX classifier that answers like a transformers one. May import data, runtime and errors."""
