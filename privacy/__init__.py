"""Privacy: policy, PII redaction, media stripping, pseudonyms, encryption and keys."""
