"""Command line: `python -m vlm init | demo | sync | users add | migrate-db | emulator`."""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from vlm.config import (
    SECRETS_FILE,
    ConfigError,
    Settings,
    cookie_key_problem,
    read_secrets_file,
    secret_key_problem,
)
from vlm.domain import SYSTEM_ACTOR, Role, VlmError
from vlm.store import DatabaseLockedError, is_postgres_url

ROOT = Path(__file__).resolve().parent.parent
DB_HELP = "DuckDB path or postgresql:// URL (default VLM_DB_URL, else VLM_DB_PATH)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vlm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="write a secrets.toml with fresh random keys (mode 600)")
    init.add_argument("--path", default=str(SECRETS_FILE), help=f"default {SECRETS_FILE}")
    init.add_argument("--force", action="store_true", help="replace an existing file")

    demo = sub.add_parser("demo", help="start emulated servers, seed data and serve the app")
    demo.add_argument("--port", type=int, default=8501, help="app port (default 8501)")
    demo.add_argument("--emulator-port", type=int, default=7071, help="first emulator port")
    demo.add_argument("--db", default=str(ROOT / "data" / "vlm.duckdb"))

    sso = sub.add_parser(
        "sso-demo", help="serve the demo with single sign-on through a local mock OpenID provider"
    )
    sso.add_argument("--port", type=int, default=8501, help="app port (default 8501)")
    sso.add_argument("--provider-port", type=int, default=9400, help="mock provider port")
    sso.add_argument("--emulator-port", type=int, default=7071, help="first emulator port")
    sso.add_argument("--db", default=str(ROOT / "data" / "vlm.duckdb"))

    sync = sub.add_parser("sync", help="pull inventory and reconcile reservations once")
    sync.add_argument("--db", default=None, help=DB_HELP)

    user_cmd = sub.add_parser("users", help="manage users")
    user_sub = user_cmd.add_subparsers(dest="action", required=True)
    add = user_sub.add_parser("add", help="add a user (password from a prompt or stdin)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--display-name", default="")
    add.add_argument("--db", default=None, help=DB_HELP)

    emulator = sub.add_parser("emulator", help="run an emulated FNE license server")
    emulator.add_argument("--port", type=int, default=7070)
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--fixture", default=None, help="fixture JSON (data/demo/*.json)")
    emulator.add_argument("--admin-password", default="admin")
    emulator.add_argument("--no-security", action="store_true")

    move = sub.add_parser(
        "migrate-db", help="copy a DuckDB installation into an empty PostgreSQL database"
    )
    move.add_argument("--to", required=True, metavar="URL", help="postgresql://user:pw@host/db")
    move.add_argument("--db", default=None, help="the DuckDB file (default VLM_DB_PATH)")
    return parser


def _settings(db: str | None) -> Settings:
    """Environment, overlaid with ./.streamlit/secrets.toml like the app, then --db (a URL
    selects PostgreSQL, a path DuckDB)."""
    return Settings.from_env(**{**read_secrets_file(), **_database_override(db)})


def _database_override(db: str | None) -> dict[str, str]:
    if not db:
        return {}
    return {"db_url": db} if is_postgres_url(db) else {"db_path": db, "db_url": ""}


def _refusal(db: str | None) -> tuple[Settings | None, str | None]:
    """The settings, or why a command that opens the database must not start."""
    try:
        settings = _settings(db)
    except ConfigError as exc:
        return None, str(exc)
    problems = settings.problems(needs_cookie_key=False)
    return (None, "; ".join(problems)) if problems else (settings, None)


def _open_context(command: str, db: str | None):
    """The service context, or None after saying in one line why there is none."""
    from vlm.context import ServiceContext
    from vlm.store.postgres import DatabaseUnreachableError

    settings, problem = _refusal(db)
    if settings is None:
        print(f"vlm {command}: refuses to start: {problem}", file=sys.stderr)
        return None
    try:
        return ServiceContext.open(settings)
    except (DatabaseLockedError, DatabaseUnreachableError) as exc:
        print(f"vlm {command}: {exc}", file=sys.stderr)
        return None


def secrets_toml(cookie_key: str, secret_key: str) -> str:
    """The text of a fresh secrets.toml."""
    written = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"# Written by `python -m vlm init` on {written}. Keep it secret; never commit it.\n"
        "# Other settings: see .streamlit/secrets.toml.example.\n\n"
        "[auth]\n"
        f'cookie_key = "{cookie_key}"\n\n'
        "[vlm]\n"
        "# Encrypts license-server passwords; another key cannot read what this one stored.\n"
        f'secret_key = "{secret_key}"\n' + SSO_TEMPLATE
    )


# Commented out: single sign-on stays off until [auth] names a provider (README "Single sign-on").
SSO_TEMPLATE = """
# ---- Single sign-on (OpenID Connect through Streamlit's st.login) ------------------------------
# Uncomment [auth] redirect_uri/cookie_secret and one [auth.<provider>] table per identity
# provider (names without '_'); register the redirect URI with the provider. VLM's own settings
# for a provider go in [vlm.sso.<provider>] (the Users page can replace the mapping).
#
# [auth]
# redirect_uri = "https://vlm.example.com/oauth2callback"
# cookie_secret = "<at least 32 random characters, e.g. python -c 'import secrets;
#                   print(secrets.token_urlsafe(48))'>"
#
# [auth.microsoft]
# client_id = "<application (client) ID>"
# client_secret = "<client secret value>"
# server_metadata_url = "https://login.microsoftonline.com/<tenant-id>/v2.0/.well-known/openid-configuration"
#
# [auth.okta]
# client_id = "<client ID>"
# client_secret = "<client secret>"
# server_metadata_url = "https://<your-okta-domain>/oauth2/default/.well-known/openid-configuration"
# client_kwargs = { scope = "openid email profile groups" }
#
# [auth.keycloak]
# client_id = "vlm"
# client_secret = "<client secret>"
# server_metadata_url = "https://<keycloak-host>/realms/<realm>/.well-known/openid-configuration"
#
# [vlm.sso.okta]
# display_name = "Okta"           # the button reads "Sign in with Okta"
# auto_create = false             # true: unknown users are created with the mapped role
# role_claim = "groups"           # the ID-token claim whose values map to VLM roles
# admin = ["vlm-admins"]
# manager = ["vlm-managers"]
# analyst = ["vlm-analysts"]
# match_email = true              # link a first sign-in to the VLM user with that e-mail
# max_age_hours = 12              # an IdP sign-in older than this is asked again
"""


def _write_private(path: Path, text: str, *, replace: bool) -> None:
    """Write text to a new file of mode 600 (atomically replacing path when replace is true)."""
    target = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp") if replace else path
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if replace:
        os.replace(target, path)


def fresh_keys() -> tuple[str, str]:
    """A random cookie key and Fernet key that pass the start-up checks."""
    from vlm.secret_box import SecretBox

    while True:
        cookie_key, secret_key = secrets.token_urlsafe(48), SecretBox.generate_key()
        if not (cookie_key_problem(cookie_key) or secret_key_problem(secret_key)):
            return cookie_key, secret_key


def run_init(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.exists() and not args.force:
        print(f"vlm init: {path} exists already; --force replaces it", file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    text = secrets_toml(*fresh_keys())
    try:
        _write_private(path, text, replace=args.force)
    except FileExistsError:
        print(f"vlm init: {path} exists already; --force replaces it", file=sys.stderr)
        return 1
    print(f"wrote {path} (mode 600) with a fresh cookie key and Fernet key")
    if args.force:
        print("server passwords stored with the old Fernet key must be entered again")
    return 0


def run_sync(args: argparse.Namespace) -> int:
    from vlm.sync.scheduler import sync_all

    ctx = _open_context("sync", args.db)
    if ctx is None:
        return 2
    try:
        results = sync_all(ctx, progress=lambda fraction, text: print(f"[{fraction:4.0%}] {text}"))
    finally:
        ctx.db.close()
    for result in results:
        print(result)
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"vlm sync: {len(failed)} server(s) had problems", file=sys.stderr)
        return 1
    return 0


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != first:
            raise VlmError("the passwords do not match")
        return first
    return sys.stdin.readline().rstrip("\n")


def run_users_add(args: argparse.Namespace) -> int:
    from vlm.services import users

    ctx = _open_context("users", args.db)
    if ctx is None:
        return 2
    try:
        password = _read_password()
        users.add_user(
            ctx,
            SYSTEM_ACTOR,
            args.name,
            args.role,
            display_name=args.display_name,
            password=password,
        )
    except VlmError as exc:
        print(f"vlm users: {exc.message}", file=sys.stderr)
        return 1
    finally:
        ctx.db.close()
    print(f"user '{args.name.lower()}' added with role {args.role}")
    return 0


def run_emulator(args: argparse.Namespace) -> int:
    from vlm.flexnet.emulator.server import serve

    serve(
        args.fixture,
        port=args.port,
        host=args.host,
        admin_password=args.admin_password,
        security=not args.no_security,
    )
    return 0


def run_demo(args: argparse.Namespace, streamlit_args: tuple[str, ...] = ()) -> int:
    from vlm.demo import prepare_demo_database, start_demo_emulators

    print("Starting emulated license servers …")
    emulators = start_demo_emulators(args.emulator_port)
    urls = {name: running.url for name, running in emulators.items()}
    for name, url in urls.items():
        print(f"  {name}: {url}")
    try:
        print(f"Preparing demo database {args.db} …")
        prepare_demo_database(args.db, urls)
        env = {
            **os.environ,
            "VLM_DEMO": "1",
            "VLM_DB_PATH": args.db,
            "VLM_SYNC_INTERVAL": os.environ.get("VLM_SYNC_INTERVAL", "30"),
        }
        command = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "server.py"),
            f"--server.port={args.port}",
            "--server.headless=true",
            "--browser.gatherUsageStats=false",
            *streamlit_args,
        ]
        print(f"Serving VLM on http://localhost:{args.port} (Ctrl+C to stop)")
        app = subprocess.Popen(command, cwd=ROOT, env=env)
        try:
            return app.wait()
        except KeyboardInterrupt:
            app.send_signal(signal.SIGINT)
            return app.wait(timeout=15)
    finally:
        for running in emulators.values():
            running.stop()


def run_sso_demo(args: argparse.Namespace) -> int:
    """The demo with single sign-on: a mock OpenID provider on loopback, a secrets.toml naming it
    (data/sso-demo/secrets.toml, a fresh cookie secret each start), then `demo`."""
    from vlm.sso_demo import DEMO_IDENTITIES, sso_secrets_toml, start_mock_provider

    provider = start_mock_provider(args.provider_port)
    print(f"Mock OpenID provider: {provider.url} (identities: {', '.join(DEMO_IDENTITIES)})")
    path = ROOT / "data" / "sso-demo" / "secrets.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = sso_secrets_toml(
        f"http://localhost:{args.port}", provider.url, cookie_secret=secrets.token_urlsafe(48)
    )
    _write_private(path, text, replace=path.exists())
    try:
        return run_demo(args, (f"--secrets.files={path}",))
    finally:
        provider.stop()


def _duckdb_source(db: str | None) -> tuple[str | None, str | None]:
    """The DuckDB file to move (--db, else VLM_DB_PATH / [vlm] db_path), or why there is none."""
    if db and is_postgres_url(db):
        return None, "--db names the DuckDB file to move, not a URL"
    if db:
        return db, None
    try:
        return _settings(None).db_path, None
    except ConfigError as exc:
        return None, str(exc)


def run_migrate_db(args: argparse.Namespace) -> int:
    from vlm.store import move, redact_url
    from vlm.store.postgres import DatabaseUnreachableError

    if not is_postgres_url(args.to):
        print("vlm migrate-db: --to must be a postgresql:// URL", file=sys.stderr)
        return 2
    source, problem = _duckdb_source(args.db)
    if source is None:
        print(f"vlm migrate-db: refuses to start: {problem}", file=sys.stderr)
        return 2
    print(f"Moving {source} to {redact_url(args.to)}", file=sys.stderr)
    try:
        report = move.move_installation(
            source, args.to, progress=lambda text: print(f"  {text}", file=sys.stderr)
        )
    except (DatabaseLockedError, DatabaseUnreachableError, move.MoveRefusedError) as exc:
        print(f"vlm migrate-db: {exc}", file=sys.stderr)
        return 2
    except move.MoveFailedError as exc:
        print(f"vlm migrate-db: the copy failed and was rolled back: {exc}", file=sys.stderr)
        return 1
    print("\n".join(report.lines()))
    if not report.ok:
        print("vlm migrate-db: the copy differs from the source; nothing was kept", file=sys.stderr)
        return 1
    print("moved and verified: point VLM at it (VLM_DB_URL or [vlm] db_url) and start it")
    return 0


COMMANDS = {
    "init": run_init,
    "demo": run_demo,
    "sso-demo": run_sso_demo,
    "sync": run_sync,
    "emulator": run_emulator,
    "migrate-db": run_migrate_db,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "users":
        return run_users_add(args)
    return COMMANDS[args.command](args)
