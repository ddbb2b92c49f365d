"""Offline tools around the runtime: evaluation and metrics, threshold calibration, label-set
readers and benchmarks. The live loop imports none of them."""
