"""@inject_secret, environment injection and the Lambda helper."""
