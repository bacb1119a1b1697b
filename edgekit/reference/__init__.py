"""Reference kernels: the definition of every operator's numerical semantics in edgekit.

``fixedpoint`` holds the integer primitives (TFLite-style multipliers, gemmlowp
fixed-point math) emulated exactly with numpy int64 arrays. ``int8_kernels``
implements the int8 operators bit for bit as TensorFlow Lite Micro's reference
kernels compute them; ``float_kernels`` holds the float32 operators and LiteRT's
hybrid (dynamic-range) kernels. All kernels are pure functions on numpy arrays,
batch-first, NHWC, vectorized over the batch.
"""
