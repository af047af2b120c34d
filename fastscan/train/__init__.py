"""Training-time tools: labelled corpus generation (benign from real libraries, malicious families).

Nothing here is imported by the scan path; torch, joblib, pandas and friends are imported lazily.
"""
