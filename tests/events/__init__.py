"""secretcache.events"""
