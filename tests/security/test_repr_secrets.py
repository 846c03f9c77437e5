"""repr() of the objects that hold keys shows none of them (#7.9)."""

from __future__ import annotations

import secrets

from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.runtime import Runtime
from vlm.secret_box import SecretBox


def test_no_key_in_the_repr_of_settings_context_secret_box_or_runtime(tmp_path):
    cookie_key, secret_key = secrets.token_urlsafe(48), SecretBox.generate_key()
    settings = Settings(
        db_path=str(tmp_path / "vlm.duckdb"), cookie_key=cookie_key, secret_key=secret_key
    )
    assert settings.problems() == []  # real keys, as a production install has them
    ctx = ServiceContext.open(settings)
    try:
        box = ctx.secrets
        token = box.encrypt("license-server-password")
        assert box.decrypt(token) == "license-server-password"
        shown = [repr(settings), str(settings), repr(ctx), f"{ctx!r}", repr(box), str(box)]
        shown.append(repr(Runtime(settings, ctx, None)))
        for text in shown:
            assert cookie_key not in text and secret_key not in text, text
            assert secret_key.rstrip("=") not in text
            assert "license-server-password" not in text
        assert "vlm.duckdb" in repr(settings)  # the rest of the settings still shows
        assert repr(box) == "SecretBox(key set)" and repr(SecretBox(None)) == "SecretBox(no key)"
    finally:
        ctx.db.close()
