"""GGUF -> ONNX model preparation for morpheus-worker (see docs/worker.md).

`python -m morpheus_model prepare smollm2 --out models/smollm2` converts a Llama GGUF into a model
directory: model.onnx (optimum's KV-cache interface, MatMulNBits 4-bit weights, GroupQueryAttention),
tokenizer.json (rebuilt from the GGUF) and morpheus.json. `tiny` writes the fixed-seed test model;
`verify` checks a directory against a numpy forward pass of its GGUF.
"""
