"""Where and how the numbers are computed: the device (`device`), data parallel ranks (`distributed`), the
precision and what this CPU's matrix products really do (`precision`, probed, never read off its flags), and
the bf16 product kernel for CPUs without AMX (`bf16_products`, `kernels/`)."""
