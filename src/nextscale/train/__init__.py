"""nextscale.train"""
