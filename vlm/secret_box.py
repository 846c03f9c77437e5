"""Encryption of license-server passwords at rest (Fernet)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    """Encrypts and decrypts short secrets with one Fernet key."""

    def __init__(self, key: str | None) -> None:
        self._fernet = Fernet(key.encode()) if key else None

    def __repr__(self) -> str:
        return f"SecretBox({'key set' if self._fernet else 'no key'})"

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, plain: str | None) -> str | None:
        if plain is None or plain == "":
            return None
        if self._fernet is None:
            raise RuntimeError("no secret key configured (VLM_SECRET_KEY)")
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str | None) -> str | None:
        if not token:
            return None
        if self._fernet is None:
            raise RuntimeError("no secret key configured (VLM_SECRET_KEY)")
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise RuntimeError("stored password cannot be decrypted with this key") from exc
