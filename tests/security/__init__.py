"""Adversarial tests: keys, lockout, login timing, forged cookies, secrets in repr (issue #7)."""
