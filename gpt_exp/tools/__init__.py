"""Tools over finished runs and sweeps: `compare` (tables, intervals, plots), `sweep_local` (W&B sweep files run
offline), `ablation` (GPT-1's Table 5 from a multirun). They import the library; the library never imports them."""
