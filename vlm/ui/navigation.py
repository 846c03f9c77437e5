"""Which pages each role may open, and the st.navigation built from that.

Page files are named `*_page.py` while their URLs are plain (`/servers`): Streamlit treats a
`pages/` folder as a legacy multipage app until the process's first st.navigation call, and in
that mode a URL equal to a file's stem would run that file directly, skipping app.py's login
gate. With distinct names such a URL falls through to app.py (page_context stops the rest).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from vlm.domain import Role
from vlm.ui.messages import no_access

APP_DIR = Path(__file__).resolve().parents[2]
PAGES_DIR = APP_DIR / "pages"
EVERYONE = frozenset(Role)
ADMIN_ONLY = frozenset({Role.ADMIN})
POOL_MANAGERS = frozenset({Role.ADMIN, Role.MANAGER})
_NO_ACCESS_KEY = "_vlm_no_access"
_MENUS_KEY = "_vlm_menus"
# wide tables get the page's whole width: the wide layout's 5rem side padding is cut to 1.5rem
FULL_WIDTH_CSS = (
    "<style>[data-testid='stMainBlockContainer']{padding-left:1.5rem;padding-right:1.5rem;"
    "max-width:100%}</style>"
)


@dataclass(frozen=True)
class PageSpec:
    """One page: its script under pages/, title, URL path, menu section and who may open it."""

    script: str
    title: str
    url_path: str
    icon: str
    section: str
    roles: frozenset[Role]
    admin_title: str | None = None

    def title_for(self, role: Role | None) -> str:
        return self.admin_title if role is Role.ADMIN and self.admin_title else self.title

    @property
    def path(self) -> str:
        return str(PAGES_DIR / self.script)


def _spec(
    name: str, title: str, url: str, icon: str, section: str, roles: frozenset[Role], **kw: str
) -> PageSpec:
    return PageSpec(f"{name}_page.py", title, url, f":material/{icon}:", section, roles, **kw)


OVERVIEW, LICENSES, ADMINISTRATION, ACCOUNT = "Overview", "Licenses", "Administration", "Account"
PAGES: tuple[PageSpec, ...] = (
    _spec("dashboard", "Dashboard", "dashboard", "monitoring", OVERVIEW, EVERYONE),
    _spec("alerts", "Alerts", "alerts", "notifications", OVERVIEW, EVERYONE),
    _spec(
        "my_pools",
        "My Pools",
        "my-pools",
        "inventory_2",
        LICENSES,
        POOL_MANAGERS,
        admin_title="All Pools",
    ),
    _spec("allocations", "Allocations", "allocations", "assignment", LICENSES, POOL_MANAGERS),
    _spec("idle", "Idle licenses", "idle", "hourglass_empty", LICENSES, EVERYONE),
    _spec("servers", "Physical LMs", "servers", "dns", ADMINISTRATION, ADMIN_ONLY),
    _spec("vlms", "Virtual LMs", "vlms", "hub", ADMINISTRATION, ADMIN_ONLY),
    _spec("pools", "Virtual Pools", "pools", "workspaces", ADMINISTRATION, ADMIN_ONLY),
    _spec("requests", "Requests", "requests", "move_up", ADMINISTRATION, ADMIN_ONLY),
    _spec("users", "Users", "users", "group", ADMINISTRATION, ADMIN_ONLY),
    _spec("audit", "Audit", "audit", "history", ADMINISTRATION, ADMIN_ONLY),
    _spec("export", "Export", "export", "download", OVERVIEW, EVERYONE),
    _spec("profile", "Profile", "profile", "account_circle", ACCOUNT, EVERYONE),
)
LOGIN = _spec("login", "Sign in", "login", "login", "", EVERYONE)
SET_PASSWORD = _spec("set_password", "Set your password", "set-password", "password", "", EVERYONE)


def pages_for(role: Role) -> list[PageSpec]:
    """The pages a role may open, in menu order."""
    return [spec for spec in PAGES if role in spec.roles]


def page_path_of(name: str) -> str:
    """The script path of a page by its short name ('allocations'), for st.page_link."""
    return str(PAGES_DIR / f"{name}_page.py")


def _page(spec: PageSpec, role: Role | None = None, *, default: bool = False) -> st.Page:
    return st.Page(
        spec.path,
        title=spec.title_for(role),
        icon=spec.icon,
        url_path=spec.url_path,
        default=default,
    )


def _no_access_page(spec: PageSpec, landing: st.Page) -> st.Page:
    """A hidden page at the URL of a page the role may not open: it runs none of that page's
    code, only sends the user to the landing page with a notice naming what was refused."""

    def refuse() -> None:
        st.session_state[_NO_ACCESS_KEY] = spec.title
        st.switch_page(landing)

    return st.Page(refuse, title=spec.title, url_path=spec.url_path, visibility="hidden")


def _show_no_access_notice(chosen: st.Page, landing: st.Page) -> None:
    """The notice stays on the landing page (through the reruns the app makes by itself)
    until the user opens another page."""
    if chosen.url_path != landing.url_path:
        st.session_state.pop(_NO_ACCESS_KEY, None)
        return
    title = st.session_state.get(_NO_ACCESS_KEY)
    if title:
        st.warning(no_access(str(title)), icon=":material/lock:")


def _role_menu(role: Role) -> tuple[dict[str, list[st.Page]], st.Page]:
    """The role's menu sections (its pages, then the hidden refusals) and its landing page.

    Built once per session and role and kept in the session (a "_vlm_" key: dropped at
    sign-out): st.Page objects may be handed to st.navigation on every run, but they carry a
    flag that st.navigation sets on the page it returns and page.run() clears, so they are
    never shared between sessions, whose runs overlap."""
    menus: dict[Role, tuple[dict[str, list[st.Page]], st.Page]] = st.session_state.setdefault(
        _MENUS_KEY, {}
    )
    found = menus.get(role)
    if found is not None:
        return found
    allowed = pages_for(role)
    sections: dict[str, list[st.Page]] = {}
    pages = [_page(spec, role, default=index == 0) for index, spec in enumerate(allowed)]
    for spec, page in zip(allowed, pages, strict=True):
        sections.setdefault(spec.section, []).append(page)
    refused = [_no_access_page(spec, pages[0]) for spec in PAGES if spec not in allowed]
    if refused:
        sections.setdefault(allowed[0].section, []).extend(refused)
    menus[role] = (sections, pages[0])
    return menus[role]


def role_navigation(role: Role) -> st.Page:
    """st.navigation with exactly the role's pages, grouped by section; the URL of any other
    page lands on the first page with "You don't have access to …" instead of a bare
    "Page not found"."""
    sections, landing = _role_menu(role)
    chosen = st.navigation(sections, expanded=True)  # an admin has 13 pages: show them all
    st.html(FULL_WIDTH_CSS)
    _show_no_access_notice(chosen, landing)
    return chosen


def single_page_navigation(spec: PageSpec) -> st.Page:
    """A hidden menu with one page (sign in, set password)."""
    return st.navigation([_page(spec, default=True)], position="hidden")
