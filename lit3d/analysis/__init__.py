"""Analyses of fitted stimuli: tuning sweeps, the metamer report, stimulus export, baselines."""
