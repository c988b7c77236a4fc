"""secretcache.redis"""
