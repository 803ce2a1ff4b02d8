"""nextscale.ar"""
