"""nextscale.eval.embeddings"""
