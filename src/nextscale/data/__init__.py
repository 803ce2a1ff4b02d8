"""nextscale.data"""
