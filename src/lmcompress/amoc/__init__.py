"""AMoC: choose which encoder layers to remove for a target domain by their causal effect.

Rotman, Feder & Reichart, TACL 2021, arXiv:2101.07086; the method, every formula and which
choices are the paper's, the official code's or ours are in docs/amoc.md. Pure torch / pandas /
statsmodels code, no Lightning: ``callbacks/amoc.py`` drives it at the end of a fine-tuning run.
"""
