"""The KPI projection's fact families: each folds a batch in memory and writes it set-based."""
