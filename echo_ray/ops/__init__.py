"""Operations: local clusters, deploying Serve configs, config validation, the ops CLI."""
