"""nextscale.eval"""
