"""nextscale.tokenizer"""
