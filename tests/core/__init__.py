"""The cache itself: SecretCache and AsyncSecretCache, the policy, configuration, the value model and errors."""
