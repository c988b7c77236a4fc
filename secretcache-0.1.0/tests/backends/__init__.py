"""The backends: AWS (boto3), the Lambda extension agent, the testing backend and the contract they share."""
