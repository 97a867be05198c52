"""Evaluation: embeddings per block, batch correction, the paper's benchmarks, probing, curation, plots."""
